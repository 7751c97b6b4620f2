"""What paging needs to know about guests, and nothing more: the port bot/crm implements
(bot.crm.paging_records.CRMGuestRecords). Paging's own tables (clocks, steps, notes, pages) stay
in bot.paging.store; the CRM's tables are read only through this Protocol, so the paging store
neither queries nor depends on the CRM's schema."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, Optional, Protocol, Sequence

SUBJECT_TYPES = ("ticket", "order", "handoff")


@dataclass(frozen=True)
class Subject:
    """A ticket, order or handoff as paging sees it. `details` holds the fields the case summary
    shows (ticket: kind, category, description, location, since_text; order: item,
    scheduled_at, party_size, flight_no, notes; handoff: reason)."""

    subject_type: str
    subject_id: int
    guest_id: int
    sender_id: str
    sla_class: Optional[str]
    status: str
    created_at: dt.datetime
    booking_id: Optional[int] = None
    property_id: Optional[str] = None  # an order's own property
    nature: Optional[str] = None  # a complaint's: service_failure | force_majeure
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stay:
    booking_id: int
    property_id: str
    check_in: dt.date
    check_out: dt.date


class GuestRecords(Protocol):
    """Read-only access to the guest records paging clocks run on."""

    def open_subjects(
        self,
        subject_type: str,
        statuses: Sequence[str],
        since: dt.datetime,
        *,
        exclude_ids: Collection[int],
        limit: int,
    ) -> list[Subject]:
        """Subjects with an SLA class, in one of `statuses`, created at or after `since`, not
        in `exclude_ids`; oldest id first, at most `limit`."""
        ...

    def subject(self, subject_type: str, subject_id: int) -> Optional[Subject]: ...

    def stays(self, guest_ids: Collection[int]) -> dict[int, list[Stay]]:
        """The guests' bookings that are not cancelled, by guest, by check-in."""
        ...

    def complaints_before(
        self, guest_id: int, before: dt.datetime, exclude_ticket: Optional[int], limit: int
    ) -> list[tuple[int, dt.datetime]]:
        """(ticket id, created at) of the guest's complaints, newest first."""
        ...

    def ticket_media(self, ticket_id: int) -> list[tuple[int, str]]:
        """(media id, kind) the guest sent with this ticket."""
        ...

    def subjects_in_status(
        self, subject_type: str, subject_ids: Collection[int], statuses: Sequence[str]
    ) -> set[int]:
        """Which of these subjects are in one of `statuses` (e.g. an order now cancelled)."""
        ...

    def guest_subjects(self, guest_id: int) -> dict[str, list[int]]:
        """Every ticket, order and handoff id of a guest, by type (for erasure)."""
        ...

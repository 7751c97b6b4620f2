"""The CRM side of paging's port (bot.paging.ports.GuestRecords): tickets, orders, handoffs,
bookings and media read for the SLA clocks. The only place paging's questions meet the CRM's
tables."""

from __future__ import annotations

import datetime as dt
from typing import Collection, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.core.time import aware
from bot.crm import models as m
from bot.crm.db import EngineOrUrl, as_engine, make_session_factory, session_scope
from bot.paging.ports import Stay, Subject

MODELS = {"ticket": m.Ticket, "order": m.Order, "handoff": m.Handoff}
DETAILS = {
    "ticket": ("kind", "category", "description", "location", "since_text"),
    "order": ("item", "scheduled_at", "party_size", "flight_no", "notes"),
    "handoff": ("reason",),
}


def _subject(subject_type: str, row, sender_id: str) -> Subject:
    return Subject(
        subject_type=subject_type,
        subject_id=row.id,
        guest_id=row.guest_id,
        sender_id=sender_id,
        sla_class=row.sla_class,
        status=row.status,
        created_at=aware(row.created_at),
        booking_id=getattr(row, "booking_id", None),
        property_id=getattr(row, "property_id", None) if subject_type == "order" else None,
        nature=getattr(row, "nature", None),
        details={name: getattr(row, name) for name in DETAILS[subject_type]},
    )


class CRMGuestRecords:
    """`CRMGuestRecords(engine_or_url)`: every method one short read transaction."""

    def __init__(self, engine_or_url: EngineOrUrl = None):
        self.engine: Engine = as_engine(engine_or_url)
        self._factory = make_session_factory(self.engine)

    def _rows(self, s, subject_type: str, where: Sequence, limit: Optional[int] = None):
        model = MODELS[subject_type]
        stmt = (
            select(model, m.Guest.sender_id)
            .join(m.Guest, m.Guest.id == model.guest_id)
            .where(*where)
            .order_by(model.id)
        )
        if limit:
            stmt = stmt.limit(limit)
        return [_subject(subject_type, row, sender) for row, sender in s.execute(stmt).all()]

    def open_subjects(
        self,
        subject_type: str,
        statuses: Sequence[str],
        since: dt.datetime,
        *,
        exclude_ids: Collection[int],
        limit: int,
    ) -> list[Subject]:
        model = MODELS[subject_type]
        where = [
            model.sla_class.isnot(None),
            model.status.in_(list(statuses)),
            model.created_at >= since,
        ]
        if exclude_ids:
            where.append(model.id.notin_(list(exclude_ids)))
        with session_scope(self._factory) as s:
            return self._rows(s, subject_type, where, limit)

    def subject(self, subject_type: str, subject_id: int) -> Optional[Subject]:
        with session_scope(self._factory) as s:
            found = self._rows(s, subject_type, [MODELS[subject_type].id == subject_id])
        return found[0] if found else None

    def stays(self, guest_ids: Collection[int]) -> dict[int, list[Stay]]:
        found: dict[int, list[Stay]] = {}
        if not guest_ids:
            return found
        with session_scope(self._factory) as s:
            rows = s.execute(
                select(
                    m.Booking.id,
                    m.Booking.guest_id,
                    m.Booking.property_id,
                    m.Booking.check_in,
                    m.Booking.check_out,
                )
                .where(
                    m.Booking.guest_id.in_(list(set(guest_ids))), m.Booking.status != "cancelled"
                )
                .order_by(m.Booking.check_in)
            ).all()
        for row in rows:
            found.setdefault(row.guest_id, []).append(
                Stay(row.id, row.property_id, row.check_in, row.check_out)
            )
        return found

    def complaints_before(
        self, guest_id: int, before: dt.datetime, exclude_ticket: Optional[int], limit: int
    ) -> list[tuple[int, dt.datetime]]:
        with session_scope(self._factory) as s:
            rows = s.execute(
                select(m.Ticket.id, m.Ticket.created_at)
                .where(
                    m.Ticket.guest_id == guest_id,
                    m.Ticket.kind == "complaint",
                    m.Ticket.created_at <= before,
                    m.Ticket.id != (exclude_ticket if exclude_ticket is not None else -1),
                )
                .order_by(m.Ticket.created_at.desc(), m.Ticket.id.desc())
                .limit(limit)
            ).all()
        return [(ticket_id, aware(created)) for ticket_id, created in rows]

    def ticket_media(self, ticket_id: int) -> list[tuple[int, str]]:
        with session_scope(self._factory) as s:
            return [
                (r.id, r.kind)
                for r in s.execute(
                    select(m.GuestMedia.id, m.GuestMedia.kind)
                    .where(m.GuestMedia.ticket_id == ticket_id)
                    .order_by(m.GuestMedia.id)
                ).all()
            ]

    def subjects_in_status(
        self, subject_type: str, subject_ids: Collection[int], statuses: Sequence[str]
    ) -> set[int]:
        if not subject_ids:
            return set()
        model = MODELS[subject_type]
        with session_scope(self._factory) as s:
            return set(
                s.execute(
                    select(model.id).where(
                        model.id.in_(list(subject_ids)), model.status.in_(list(statuses))
                    )
                ).scalars()
            )

    def guest_subjects(self, guest_id: int) -> dict[str, list[int]]:
        with session_scope(self._factory) as s:
            return {
                kind: list(
                    s.execute(
                        select(model.id).where(model.guest_id == guest_id).order_by(model.id)
                    ).scalars()
                )
                for kind, model in MODELS.items()
            }

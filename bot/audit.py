"""Every staff read of a guest goes through here, so the audit log names who looked (PIPL).

    staff = Staff("console", "advisor_li")
    profile = read_profile(crm, staff, "kf:wm123", reason="case #12")
    card = staff_read(crm, staff, "case.view", "ticket", 7, lambda: build_card(...),
                      detail={"case": 12, "fields": ["name", "tier", "summary"]})

The rule is "no record, no read": the audit row is written first (for a profile, in the same
transaction as the read), and if it cannot be written the read is refused with the error, never
served unaudited. The actor stored is `<surface>:<userid>` (`advisor:li` for the WeCom app and
the case pages, `console:li` for the staff console, `cli:alice` for the command line), so a
report can tell which door a person came through. The audit entry holds ids and what was shown
(field names, the case number), never the guest's data itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")

SURFACES = ("advisor", "console", "cli", "worker", "system")


@dataclass(frozen=True)
class Staff:
    """Who is reading: the surface they came through and their userid there."""

    surface: str
    userid: str

    def __post_init__(self) -> None:
        if self.surface not in SURFACES:
            raise ValueError(
                f"staff surface must be one of {', '.join(SURFACES)}; " f"got {self.surface!r}"
            )
        if not self.userid or not str(self.userid).strip():
            raise ValueError("a staff read needs the staff member's userid")

    @property
    def actor(self) -> str:
        return f"{self.surface}:{self.userid}"

    @classmethod
    def from_actor(cls, actor: str) -> "Staff":
        """`"console:li"` -> Staff("console", "li") (the CLI's `--actor` form)."""
        surface, sep, userid = (actor or "").partition(":")
        if not sep:
            raise ValueError(f"actor {actor!r} is not <surface>:<userid>")
        return cls(surface, userid)


def staff_read(
    crm,
    staff: Staff,
    action: str,
    subject_type: Optional[str],
    subject_id: Any,
    read: Callable[[], T],
    *,
    detail: Optional[dict] = None,
) -> T:
    """Record that `staff` reads the subject, then run `read()` and return what it returns.

    Raises whatever the audit write raised (StoreUnavailable, ...) without reading."""
    crm.record_audit(staff.actor, action, subject_type, subject_id, detail)
    return read()


async def staff_read_async(
    crm,
    staff: Staff,
    action: str,
    subject_type: Optional[str],
    subject_id: Any,
    read: Callable[[], T],
    *,
    detail: Optional[dict] = None,
) -> T:
    """`staff_read` from an event loop: both the audit write and `read` run in a thread."""
    return await asyncio.to_thread(
        staff_read, crm, staff, action, subject_type, subject_id, read, detail=detail
    )


def read_profile(crm, staff: Staff, sender_id: str, *, reason: Optional[str] = None) -> dict:
    """A guest's whole CRM profile for staff; the audit row is written in the read's own
    transaction (`CRMStore.profile(actor=...)`). Raises GuestNotFound."""
    return crm.profile(sender_id, actor=staff.actor, reason=reason)

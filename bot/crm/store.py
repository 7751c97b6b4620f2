"""`CRMStore`: the one door into the CRM for the rest of the concierge.

Why it looks like this:
- Methods are synchronous (SQLAlchemy 1.4, blocking drivers). Code on an event loop wraps them:
  `await asyncio.to_thread(store.upcoming_bookings, sender_id, today)`.
- Every method is its own short transaction and returns frozen dataclasses (`GuestDTO`,
  `BookingDTO`, ...), never ORM objects, so nothing lazy-loads after its session has closed and
  callers cannot change rows behind the store's back.
- Guests are addressed by `sender_id`, the stable Rasa sender id; other rows by their integer id.
- A database that cannot be reached (or has not been migrated) raises `StoreUnavailable`; an
  unknown guest or row raises `GuestNotFound` / `NotFound` (both `LookupError`); a value outside
  a vocabulary (tier, status, ...) raises `ValueError`.
- Sensitive fields arrive decrypted in DTOs but are left out of their repr (logs), and
  `profile()` masks phone and ID numbers. Staff access through `profile(actor=...)` is audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Optional, TypeVar

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.time import CHINA_TZ, china_today  # noqa: F401 - re-exported
from bot.crm import models as m
from bot.crm.crypto import blind_index
from bot.crm.db import EngineOrUrl, as_engine, make_session_factory, session_scope
from bot.crm.queries import guest_is  # noqa: F401 - re-exported
from bot.crm.errors import CRMError, GuestNotFound, NotFound, StoreUnavailable, guarded

log = logging.getLogger(__name__)

# Re-exported: callers import the errors from here (`from bot.crm.store import StoreUnavailable`).
__all__ = [
    "CRMStore",
    "CRMError",
    "StoreUnavailable",
    "NotFound",
    "GuestNotFound",
    "GuestDTO",
    "BookingDTO",
    "OrderDTO",
    "TagDTO",
    "TicketDTO",
    "HandoffDTO",
    "PageDTO",
    "ConsentDTO",
    "FeedbackDTO",
    "AuditDTO",
    "to_jsonable",
    "mask_phone",
    "mask_document",
    "china_today",
    "CHINA_TZ",
]

# China has one time zone and no DST: "today" for a guest's stay is today in UTC+8 (bot.core.time).

T = TypeVar("T")


# ---- DTOs -------------------------------------------------------------------------------------


def mask_phone(phone: str | None) -> str | None:
    """138****5678: enough for a person to recognise, not enough to call."""
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    if len(digits) > 11 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) < 7:
        return "****"
    return f"{digits[:3]}****{digits[-4:]}"


def mask_document(number: str | None) -> str | None:
    """ID/passport numbers: the last four characters only."""
    if not number:
        return None
    return "****" + number[-4:] if len(number) > 4 else "****"


@dataclass(frozen=True)
class GuestDTO:
    id: int
    sender_id: str
    display_name: Optional[str]
    tier: str
    birthday: Optional[dt.date]
    wecom_external_userid: Optional[str]
    kf_open_kfid: Optional[str]
    kf_external_userid: Optional[str]
    unionid: Optional[str]
    is_demo: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    # Decrypted sensitive fields: available to code, kept out of repr() and so out of logs.
    phone: Optional[str] = field(default=None, repr=False)
    id_number: Optional[str] = field(default=None, repr=False)
    passport_number: Optional[str] = field(default=None, repr=False)
    health_notes: Optional[str] = field(default=None, repr=False)
    legal_hold: Optional[str] = None  # why the data must be kept despite an erasure request

    @property
    def masked_phone(self) -> str | None:
        return mask_phone(self.phone)


@dataclass(frozen=True)
class BookingDTO:
    id: int
    guest_id: int
    property_id: str
    city: Optional[str]
    check_in: dt.date
    check_out: dt.date
    room_type: Optional[str]
    purpose: Optional[str]
    party_size: int
    status: str
    confirmation_no: Optional[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    channel: Optional[str] = None
    amount: Optional[Decimal] = None
    source: Optional[str] = None
    source_version: Optional[str] = None
    notes: Optional[str] = field(default=None, repr=False)

    @property
    def nights(self) -> int:
        return (self.check_out - self.check_in).days


@dataclass(frozen=True)
class OrderDTO:
    id: int
    guest_id: int
    booking_id: Optional[int]
    property_id: Optional[str]
    item: str
    scheduled_at: Optional[dt.datetime]
    party_size: Optional[int]
    flight_no: Optional[str]
    notes: Optional[str]
    status: str
    sla_class: Optional[str]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class TagDTO:
    id: int
    guest_id: int
    category: str
    value: str
    confidence: float
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    source_message: Optional[str] = field(default=None, repr=False)


@dataclass(frozen=True)
class TicketDTO:
    id: int
    guest_id: int
    booking_id: Optional[int]
    kind: str
    category: Optional[str]
    severity: str
    nature: Optional[str]
    description: Optional[str]
    location: Optional[str]
    since_text: Optional[str]
    sla_class: Optional[str]
    status: str
    rating: Optional[int]
    created_at: dt.datetime
    updated_at: dt.datetime
    resolved_at: Optional[dt.datetime]


@dataclass(frozen=True)
class GuestMediaDTO:
    id: int
    guest_id: int
    ticket_id: Optional[int]
    kind: str
    content_type: str
    path: str
    size: int
    sha256: str
    wecom_media_id: Optional[str]
    created_at: dt.datetime


@dataclass(frozen=True)
class HandoffDTO:
    id: int
    guest_id: int
    reason: str
    status: str
    sla_class: Optional[str]
    advisor_userid: Optional[str]
    created_at: dt.datetime
    accepted_at: Optional[dt.datetime]
    returned_at: Optional[dt.datetime]


@dataclass(frozen=True)
class PageDTO:
    id: int
    subject_type: str
    subject_id: int
    step: str
    recipient: Optional[str]
    due_at: Optional[dt.datetime]
    sent_at: Optional[dt.datetime]
    acknowledged_at: Optional[dt.datetime]
    status: str
    attempt: int
    created_at: dt.datetime


@dataclass(frozen=True)
class FeedbackDTO:
    id: int
    guest_id: int
    booking_id: Optional[int]
    kind: str
    score: Optional[int]
    created_at: dt.datetime
    text: Optional[str] = field(default=None, repr=False)


@dataclass(frozen=True)
class ConsentDTO:
    id: int
    guest_id: int
    purpose: str
    granted: bool
    source: Optional[str]
    created_at: dt.datetime


@dataclass(frozen=True)
class AuditDTO:
    id: int
    actor: str
    action: str
    subject_type: Optional[str]
    subject_id: Optional[str]
    detail: Any
    created_at: dt.datetime


def _utc(value: Any) -> Any:
    # A row just written still holds the caller's datetime (e.g. in UTC+8): DTOs always say UTC.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc)
    return value


def _dto(cls: type[T], row: Any, **overrides: Any) -> T:
    """Copy the dataclass's fields off an ORM row (inside its session)."""
    values = {
        f.name: _utc(getattr(row, f.name))
        for f in dataclasses.fields(cls)
        if f.name not in overrides
    }
    return cls(**values, **overrides)


def _tag_dto(row: m.PreferenceTag) -> TagDTO:
    return _dto(TagDTO, row, value=row.plain_value)


def to_jsonable(value: Any) -> Any:
    """DTOs, dates and containers to plain JSON types (datetimes as ISO 8601 with offset).

    DTO fields hidden from repr (decrypted phone, ID numbers, guest messages) are left out here
    too, so dumping a DTO can never leak them; add them back explicitly where they belong.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr
        }
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):  # money: yuan with cents, as a JSON number
        return float(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value


# ---- the store --------------------------------------------------------------------------------

# Keyword arguments get_or_create_guest / update_guest accept besides `name`.
GUEST_FIELDS = frozenset(
    {
        "wecom_external_userid",
        "kf_open_kfid",
        "kf_external_userid",
        "unionid",
        "phone",
        "id_number",
        "passport_number",
        "health_notes",
        "birthday",
        "tier",
        "is_demo",
        "owner_userid",
        "points",
    }
)
IDENTITY_FIELDS = ("wecom_external_userid", "kf_open_kfid", "kf_external_userid", "unionid")


def _require_aware(value: dt.datetime | None, name: str) -> None:
    """Naive datetimes are ambiguous (UTC? China time?): refuse them at the door."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")


def _require(value: Any, name: str) -> None:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{name} is required")


class CRMStore:
    """Guest profiles and everything hanging off them. Thread-safe; one instance per process.

    `CRMStore(url)` builds (and owns) an engine; `CRMStore(engine)` shares one;
    `CRMStore()` uses the configured DATABASE_URL. Connecting happens on first use.
    """

    def __init__(self, engine_or_url: EngineOrUrl = None):
        self._owns_engine = not isinstance(engine_or_url, Engine)
        self.engine: Engine = as_engine(engine_or_url)
        self._factory = make_session_factory(self.engine)

    def close(self) -> None:
        """Release pooled connections (only if this store created the engine)."""
        if self._owns_engine:
            self.engine.dispose()

    def _session(self):
        return session_scope(self._factory)

    @guarded
    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers and has the CRM tables."""
        with self._session() as s:
            s.execute(select(m.Guest.id).limit(1))

    # ---- guests ---------------------------------------------------------------------------
    @staticmethod
    def _guest_row(s: Session, sender_id: str) -> m.Guest | None:
        return s.execute(
            select(m.Guest).where(guest_is(sender_id)).order_by(m.Guest.id).limit(1)
        ).scalar_one_or_none()

    def _require_guest(self, s: Session, sender_id: str) -> m.Guest:
        guest = self._guest_row(s, sender_id)
        if guest is None:
            raise GuestNotFound(sender_id)
        return guest

    @staticmethod
    def _guest_fields(name: str | None, fields: dict) -> dict:
        unknown = set(fields) - GUEST_FIELDS
        if unknown:
            raise TypeError(f"unknown guest field(s): {', '.join(sorted(unknown))}")
        values = {k: v for k, v in fields.items() if v is not None}
        if "phone" in values:  # the phone is encrypted: keep its blind index for matching
            from bot.bookings.phone import phone_index

            values["phone_index"] = phone_index(values["phone"])
        if name is not None:
            values["display_name"] = name
        return values

    @guarded
    def get_or_create_guest(
        self, sender_id: str, *, name: str | None = None, **identity: Any
    ) -> GuestDTO:
        """The guest for `sender_id`, created on first contact. Idempotent: on an existing guest
        the given name/identity fields only fill blanks, they never overwrite (use update_guest).
        Safe against two processes creating the same guest at once."""
        _require(sender_id, "sender_id")
        values = self._guest_fields(name, identity)

        def attempt() -> GuestDTO:
            with self._session() as s:
                guest = self._guest_row(s, sender_id)
                if guest is None:
                    guest = m.Guest(sender_id=sender_id, **values)
                    s.add(guest)
                else:
                    for key, value in values.items():
                        if getattr(guest, key) in (None, ""):
                            setattr(guest, key, value)
                s.flush()
                return _dto(GuestDTO, guest)

        try:
            return attempt()
        except IntegrityError:  # lost the race to insert the same sender_id: read the winner
            return attempt()

    @guarded
    def update_guest(self, sender_id: str, *, name: str | None = None, **fields: Any) -> GuestDTO:
        """Overwrite the given fields (None means 'leave as is')."""
        values = self._guest_fields(name, fields)
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            for key, value in values.items():
                setattr(guest, key, value)
            s.flush()
            if {"birthday", "tier"} & set(values):  # the profile facts copy these: keep current
                from bot.bookings.facts import refresh_facts

                refresh_facts(s, [guest.id])
            return _dto(GuestDTO, guest)

    @guarded
    def find_guest(self, sender_id: str) -> GuestDTO | None:
        with self._session() as s:
            guest = self._guest_row(s, sender_id)
            return _dto(GuestDTO, guest) if guest else None

    @guarded
    def sender_id_of(self, guest_id: int) -> str | None:
        """The sender id of a guest row (orders and tickets carry the row id)."""
        with self._session() as s:
            return s.execute(select(m.Guest.sender_id).where(m.Guest.id == guest_id)).scalar()

    @guarded
    def find_guest_by_identity(self, field_name: str, value: str) -> GuestDTO | None:
        """Look a guest up by a WeCom identity (e.g. `kf_external_userid`)."""
        if field_name not in IDENTITY_FIELDS:
            raise ValueError(f"field_name must be one of {', '.join(IDENTITY_FIELDS)}")
        column = getattr(m.Guest, field_name)
        with self._session() as s:
            guest = s.execute(
                select(m.Guest).where(column == value).order_by(m.Guest.id).limit(1)
            ).scalar_one_or_none()
            return _dto(GuestDTO, guest) if guest else None

    @guarded
    def list_guests(self, *, demo: bool | None = None, limit: int | None = None) -> list[GuestDTO]:
        """All guests by id; `demo=True/False` filters on is_demo."""
        stmt = select(m.Guest).order_by(m.Guest.id)
        if demo is not None:
            stmt = stmt.where(m.Guest.is_demo.is_(demo))
        if limit:
            stmt = stmt.limit(limit)
        with self._session() as s:
            return [_dto(GuestDTO, g) for g in s.execute(stmt).scalars()]

    @guarded
    def delete_guest(self, sender_id: str, *, actor: str, reason: str | None = None) -> bool:
        """Erase a guest and everything personal about them (PIPL), and log that we did.

        Returns False when there was no such guest. The audit entry keeps only the sender id
        and counts, never the deleted data.
        """
        _require(actor, "actor")
        with self._session() as s:
            guest = self._guest_row(s, sender_id)
            if guest is None:
                return False
            gid = guest.id
            subjects = self._page_subjects(s, gid)
            counts = {
                "bookings": len(
                    s.execute(select(m.Booking.id).where(m.Booking.guest_id == gid)).all()
                ),
                "tags": len(
                    s.execute(
                        select(m.PreferenceTag.id).where(m.PreferenceTag.guest_id == gid)
                    ).all()
                ),
                "orders": len(subjects["order"]),
                "tickets": len(subjects["ticket"]),
                "handoffs": len(subjects["handoff"]),
            }
            # (pages are paging's: bot.erasure has the paging store forget them first)
            s.expunge(guest)
            s.execute(delete(m.Guest).where(m.Guest.id == gid))  # children go by ON DELETE CASCADE
            s.add(
                m.AuditLog(
                    actor=actor,
                    action="guest.delete",
                    subject_type="guest",
                    subject_id=sender_id,
                    detail={"reason": reason, "deleted": counts},
                )
            )
            return True

    @guarded
    def set_legal_hold(self, sender_id: str, reason: str | None, *, actor: str) -> GuestDTO:
        """Put a legal hold on the guest (`reason`), or lift it (None); audited either way."""
        _require(actor, "actor")
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            guest.legal_hold = reason or None
            s.add(
                self._audit_row(
                    actor,
                    "guest.legal_hold" if reason else "guest.legal_hold_lift",
                    "guest",
                    sender_id,
                    {"reason": reason} if reason else None,
                )
            )
            s.flush()
            return _dto(GuestDTO, guest)

    # ---- bookings -------------------------------------------------------------------------
    @guarded
    def add_booking(
        self,
        sender_id: str,
        *,
        property_id: str,
        check_in: dt.date,
        check_out: dt.date,
        city: str | None = None,
        room_type: str | None = None,
        purpose: str | None = None,
        party_size: int = 1,
        status: str = "booked",
        confirmation_no: str | None = None,
    ) -> BookingDTO:
        """A stay for an existing guest; check_out must be after check_in."""
        _require(property_id, "property_id")
        if check_out <= check_in:
            raise ValueError(f"check_out {check_out} must be after check_in {check_in}")
        if party_size < 1:
            raise ValueError("party_size must be at least 1")
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            booking = m.Booking(
                guest_id=guest.id,
                property_id=property_id,
                city=city,
                check_in=check_in,
                check_out=check_out,
                room_type=room_type,
                purpose=purpose,
                party_size=party_size,
                status=status,
                confirmation_no=confirmation_no,
            )
            s.add(booking)
            s.flush()
            return _dto(BookingDTO, booking)

    @guarded
    def booking(self, booking_id: int) -> BookingDTO | None:
        with self._session() as s:
            row = s.get(m.Booking, booking_id)
            return _dto(BookingDTO, row) if row else None

    @guarded
    def bookings(self, sender_id: str) -> list[BookingDTO]:
        """Every booking of the guest, any status, by check-in date (empty for unknown guests)."""
        stmt = (
            select(m.Booking)
            .join(m.Guest)
            .where(guest_is(sender_id))
            .order_by(m.Booking.check_in, m.Booking.id)
        )
        with self._session() as s:
            return [_dto(BookingDTO, b) for b in s.execute(stmt).scalars()]

    @guarded
    def upcoming_bookings(self, sender_id: str, today: dt.date | None = None) -> list[BookingDTO]:
        """Stays not over yet (booked or checked in, check-out today or later), soonest first.
        `today` defaults to today in China."""
        today = today or china_today()
        stmt = (
            select(m.Booking)
            .join(m.Guest)
            .where(
                guest_is(sender_id),
                m.Booking.status.in_(m.ACTIVE_BOOKING_STATUSES),
                m.Booking.check_out >= today,
            )
            .order_by(m.Booking.check_in, m.Booking.id)
        )
        with self._session() as s:
            return [_dto(BookingDTO, b) for b in s.execute(stmt).scalars()]

    @guarded
    def set_booking_status(self, booking_id: int, status: str) -> BookingDTO:
        with self._session() as s:
            row = self._require_row(s, m.Booking, booking_id)
            row.status = status
            s.flush()
            return _dto(BookingDTO, row)

    # ---- preference tags ------------------------------------------------------------------
    @guarded
    def upsert_tag(
        self,
        sender_id: str,
        category: str,
        value: str,
        *,
        source_message: str | None = None,
        confidence: float = 1.0,
        active: bool = True,
    ) -> TagDTO:
        """Record what the guest revealed; the same (category, value) again refreshes its
        source, confidence and time instead of adding a row. Health categories are encrypted."""
        _require(category, "category")
        _require(value, "value")
        if not 0.0 <= confidence <= 1.0:
            raise ValueError("confidence must be between 0 and 1")
        category, value = category.strip(), value.strip()
        sensitive = category in m.SENSITIVE_TAG_CATEGORIES
        key = blind_index(value) if sensitive else value

        def attempt() -> TagDTO:
            with self._session() as s:
                guest = self._require_guest(s, sender_id)
                tag = s.execute(
                    select(m.PreferenceTag).where(
                        m.PreferenceTag.guest_id == guest.id,
                        m.PreferenceTag.category == category,
                        m.PreferenceTag.value == key,
                    )
                ).scalar_one_or_none()
                if tag is None:
                    tag = m.PreferenceTag(
                        guest_id=guest.id,
                        category=category,
                        value=key,
                        secret_value=value if sensitive else None,
                    )
                    s.add(tag)
                if source_message is not None:
                    tag.source_message = source_message
                tag.confidence = confidence
                tag.active = active
                tag.updated_at = m.utcnow()
                s.flush()
                return _tag_dto(tag)

        try:
            return attempt()
        except IntegrityError:  # a concurrent insert of the same tag won: update that row
            return attempt()

    @guarded
    def deactivate_tag(self, sender_id: str, category: str, value: str) -> bool:
        """Mark a tag no longer true (kept for history). False if there was none."""
        key = (
            blind_index(value.strip()) if category in m.SENSITIVE_TAG_CATEGORIES else value.strip()
        )
        with self._session() as s:
            tag = s.execute(
                select(m.PreferenceTag)
                .join(m.Guest)
                .where(
                    guest_is(sender_id),
                    m.PreferenceTag.category == category,
                    m.PreferenceTag.value == key,
                )
            ).scalar_one_or_none()
            if tag is None:
                return False
            tag.active = False
            return True

    @guarded
    def tags(self, sender_id: str, *, active_only: bool = True) -> list[TagDTO]:
        stmt = (
            select(m.PreferenceTag)
            .join(m.Guest)
            .where(guest_is(sender_id))
            .order_by(m.PreferenceTag.category, m.PreferenceTag.id)
        )
        if active_only:
            stmt = stmt.where(m.PreferenceTag.active.is_(True))
        with self._session() as s:
            return [_tag_dto(t) for t in s.execute(stmt).scalars()]

    def active_tag_values(self, sender_id: str) -> list[str]:
        """Just the values of the guest's active tags (e.g. for tailoring an answer)."""
        return [t.value for t in self.tags(sender_id)]

    # ---- orders ---------------------------------------------------------------------------
    @guarded
    def create_order(
        self,
        sender_id: str,
        *,
        item: str,
        booking_id: int | None = None,
        property_id: str | None = None,
        scheduled_at: dt.datetime | None = None,
        party_size: int | None = None,
        flight_no: str | None = None,
        notes: str | None = None,
        status: str = "requested",
        sla_class: str | None = None,
    ) -> OrderDTO:
        """An add-on order. With `booking_id` the booking must be the guest's own, and its
        property is used unless `property_id` is given. `scheduled_at` must be tz-aware."""
        _require(item, "item")
        _require_aware(scheduled_at, "scheduled_at")
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            if booking_id is not None:
                booking = self._own_booking(s, guest, booking_id)
                property_id = property_id or booking.property_id
            order = m.Order(
                guest_id=guest.id,
                booking_id=booking_id,
                property_id=property_id,
                item=item,
                scheduled_at=scheduled_at,
                party_size=party_size,
                flight_no=flight_no,
                notes=notes,
                status=status,
                sla_class=sla_class,
            )
            s.add(order)
            s.flush()
            return _dto(OrderDTO, order)

    @guarded
    def order(self, order_id: int) -> OrderDTO | None:
        with self._session() as s:
            row = s.get(m.Order, order_id)
            return _dto(OrderDTO, row) if row else None

    @guarded
    def orders(self, sender_id: str) -> list[OrderDTO]:
        stmt = (
            select(m.Order)
            .join(m.Guest, m.Order.guest_id == m.Guest.id)
            .where(guest_is(sender_id))
            .order_by(m.Order.created_at, m.Order.id)
        )
        with self._session() as s:
            return [_dto(OrderDTO, o) for o in s.execute(stmt).scalars()]

    @guarded
    def orders_for_booking(self, booking_id: int) -> list[OrderDTO]:
        stmt = (
            select(m.Order)
            .where(m.Order.booking_id == booking_id)
            .order_by(m.Order.created_at, m.Order.id)
        )
        with self._session() as s:
            return [_dto(OrderDTO, o) for o in s.execute(stmt).scalars()]

    @guarded
    def set_order_status(self, order_id: int, status: str) -> OrderDTO:
        with self._session() as s:
            row = self._require_row(s, m.Order, order_id)
            row.status = status
            s.flush()
            return _dto(OrderDTO, row)

    # ---- tickets --------------------------------------------------------------------------
    @guarded
    def create_ticket(
        self,
        sender_id: str,
        *,
        kind: str,
        category: str | None = None,
        severity: str = "routine",
        nature: str | None = None,
        description: str | None = None,
        location: str | None = None,
        since_text: str | None = None,
        sla_class: str | None = None,
        booking_id: int | None = None,
    ) -> TicketDTO:
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            if booking_id is not None:
                self._own_booking(s, guest, booking_id)
            ticket = m.Ticket(
                guest_id=guest.id,
                booking_id=booking_id,
                kind=kind,
                category=category,
                severity=severity,
                nature=nature,
                description=description,
                location=location,
                since_text=since_text,
                sla_class=sla_class,
                status="open",
            )
            s.add(ticket)
            s.flush()
            return _dto(TicketDTO, ticket)

    @guarded
    def ticket(self, ticket_id: int) -> TicketDTO | None:
        with self._session() as s:
            row = s.get(m.Ticket, ticket_id)
            return _dto(TicketDTO, row) if row else None

    @guarded
    def tickets(self, sender_id: str) -> list[TicketDTO]:
        stmt = (
            select(m.Ticket)
            .join(m.Guest, m.Ticket.guest_id == m.Guest.id)
            .where(guest_is(sender_id))
            .order_by(m.Ticket.created_at, m.Ticket.id)
        )
        with self._session() as s:
            return [_dto(TicketDTO, t) for t in s.execute(stmt).scalars()]

    @guarded
    def set_ticket_status(
        self, ticket_id: int, status: str, *, rating: int | None = None
    ) -> TicketDTO:
        """Move a ticket on; resolving/closing stamps resolved_at once."""
        with self._session() as s:
            row = self._require_row(s, m.Ticket, ticket_id)
            row.status = status
            if rating is not None:
                row.rating = rating
            if status in ("resolved", "closed") and row.resolved_at is None:
                row.resolved_at = m.utcnow()
            s.flush()
            return _dto(TicketDTO, row)

    @guarded
    def enrich_ticket(
        self,
        ticket_id: int,
        *,
        location: str | None = None,
        since_text: str | None = None,
        category: str | None = None,
        nature: str | None = None,
    ) -> TicketDTO:
        """Fill what the guest told after the ticket was opened; what is known stays."""
        with self._session() as s:
            row = self._require_row(s, m.Ticket, ticket_id)
            for key, value in (
                ("location", location and location[:128]),
                ("since_text", since_text and since_text[:64]),
                ("category", category),
                ("nature", nature),
            ):
                if value and not getattr(row, key):
                    setattr(row, key, value)
            s.flush()
            return _dto(TicketDTO, row)

    @guarded
    def open_complaint(self, sender_id: str, description: str) -> TicketDTO | None:
        """The guest's newest complaint ticket, still open, opened from this very message."""
        # The description is encrypted (a new token each write): compared once decrypted.
        stmt = (
            select(m.Ticket)
            .join(m.Guest, m.Ticket.guest_id == m.Guest.id)
            .where(
                m.Guest.sender_id == sender_id,
                m.Ticket.kind == "complaint",
                m.Ticket.status.in_(("open", "acknowledged")),
            )
            .order_by(m.Ticket.id.desc())
            .limit(20)
        )
        with self._session() as s:
            row = next((t for t in s.execute(stmt).scalars() if t.description == description), None)
            return _dto(TicketDTO, row) if row else None

    # ---- media the guest sent (bot.guest_media) ---------------------------------------------
    @guarded
    def add_guest_media(
        self,
        sender_id: str,
        *,
        kind: str,
        content_type: str,
        path: str,
        size: int,
        sha256: str,
        wecom_media_id: str | None = None,
        link_within: dt.timedelta = dt.timedelta(hours=24),
    ) -> GuestMediaDTO:
        """Record a photo / voice message; linked to the guest's newest complaint ticket still
        open and opened within `link_within` (the one it most likely shows), else to none."""
        since = m.utcnow() - link_within
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            ticket_id = s.execute(
                select(m.Ticket.id)
                .where(
                    m.Ticket.guest_id == guest.id,
                    m.Ticket.kind == "complaint",
                    m.Ticket.status.in_(("open", "acknowledged")),
                    m.Ticket.created_at >= since,
                )
                .order_by(m.Ticket.created_at.desc(), m.Ticket.id.desc())
                .limit(1)
            ).scalar()
            row = m.GuestMedia(
                guest_id=guest.id,
                ticket_id=ticket_id,
                kind=kind,
                content_type=content_type[:64],
                path=path,
                size=size,
                sha256=sha256,
                wecom_media_id=wecom_media_id,
            )
            s.add(row)
            s.flush()
            return _dto(GuestMediaDTO, row)

    @guarded
    def ticket_media(self, ticket_id: int) -> list[GuestMediaDTO]:
        stmt = (
            select(m.GuestMedia)
            .where(m.GuestMedia.ticket_id == ticket_id)
            .order_by(m.GuestMedia.id)
        )
        with self._session() as s:
            return [_dto(GuestMediaDTO, r) for r in s.execute(stmt).scalars()]

    @guarded
    def guest_media(self, media_id: int) -> GuestMediaDTO | None:
        with self._session() as s:
            row = s.get(m.GuestMedia, media_id)
            return _dto(GuestMediaDTO, row) if row else None

    # ---- handoffs -------------------------------------------------------------------------
    @guarded
    def create_handoff(
        self, sender_id: str, *, reason: str, sla_class: str | None = None
    ) -> HandoffDTO:
        _require(reason, "reason")
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            handoff = m.Handoff(
                guest_id=guest.id, reason=reason, sla_class=sla_class, status="requested"
            )
            s.add(handoff)
            s.flush()
            return _dto(HandoffDTO, handoff)

    @guarded
    def handoffs(self, sender_id: str) -> list[HandoffDTO]:
        stmt = (
            select(m.Handoff)
            .join(m.Guest, m.Handoff.guest_id == m.Guest.id)
            .where(guest_is(sender_id))
            .order_by(m.Handoff.created_at, m.Handoff.id)
        )
        with self._session() as s:
            return [_dto(HandoffDTO, h) for h in s.execute(stmt).scalars()]

    @guarded
    def open_handoff(self, sender_id: str) -> HandoffDTO | None:
        """The newest handoff still requested or active (the bot stays quiet while active)."""
        stmt = (
            select(m.Handoff)
            .join(m.Guest, m.Handoff.guest_id == m.Guest.id)
            .where(guest_is(sender_id), m.Handoff.status.in_(("requested", "active")))
            .order_by(m.Handoff.created_at.desc(), m.Handoff.id.desc())
            .limit(1)
        )
        with self._session() as s:
            row = s.execute(stmt).scalar_one_or_none()
            return _dto(HandoffDTO, row) if row else None

    @guarded
    def set_handoff_status(
        self, handoff_id: int, status: str, *, advisor_userid: str | None = None
    ) -> HandoffDTO:
        """requested → active (an advisor took over; stamps accepted_at) → returned."""
        with self._session() as s:
            row = self._require_row(s, m.Handoff, handoff_id)
            row.status = status
            if advisor_userid is not None:
                row.advisor_userid = advisor_userid
            if status == "active" and row.accepted_at is None:
                row.accepted_at = m.utcnow()
            if status == "returned" and row.returned_at is None:
                row.returned_at = m.utcnow()
            s.flush()
            return _dto(HandoffDTO, row)

    # ---- pages: written only by the paging store (bot.paging.store); read here for the profile
    @staticmethod
    def _page_subjects(s: Session, guest_id: int) -> dict[str, list[int]]:
        return {
            "ticket": list(
                s.execute(select(m.Ticket.id).where(m.Ticket.guest_id == guest_id)).scalars()
            ),
            "order": list(
                s.execute(select(m.Order.id).where(m.Order.guest_id == guest_id)).scalars()
            ),
            "handoff": list(
                s.execute(select(m.Handoff.id).where(m.Handoff.guest_id == guest_id)).scalars()
            ),
        }

    @staticmethod
    def _pages_condition(subjects: dict[str, list[int]]):
        parts = [
            and_(m.Page.subject_type == kind, m.Page.subject_id.in_(ids))
            for kind, ids in subjects.items()
            if ids
        ]
        return or_(*parts) if parts else None

    # ---- feedback (praise, NPS) -------------------------------------------------------------
    @guarded
    def record_feedback(
        self,
        sender_id: str,
        *,
        kind: str,
        text: str | None = None,
        score: int | None = None,
        booking_id: int | None = None,
    ) -> FeedbackDTO:
        """Keep what a guest said about us that is not a complaint (the words are encrypted)."""
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            if booking_id is not None:
                self._own_booking(s, guest, booking_id)
            row = m.Feedback(
                guest_id=guest.id, booking_id=booking_id, kind=kind, score=score, text=text
            )
            s.add(row)
            s.flush()
            return _dto(FeedbackDTO, row)

    @guarded
    def feedback(self, sender_id: str) -> list[FeedbackDTO]:
        stmt = (
            select(m.Feedback)
            .join(m.Guest, m.Feedback.guest_id == m.Guest.id)
            .where(guest_is(sender_id))
            .order_by(m.Feedback.created_at, m.Feedback.id)
        )
        with self._session() as s:
            return [_dto(FeedbackDTO, f) for f in s.execute(stmt).scalars()]

    @guarded
    def feedback_scores(
        self, kind: str, since: dt.datetime | None = None
    ) -> list[tuple[dt.datetime, int]]:
        """(time, score) of every scored feedback of `kind` (e.g. "nps"), oldest first: the
        figures for reports, without who gave them."""
        stmt = (
            select(m.Feedback.created_at, m.Feedback.score)
            .where(m.Feedback.kind == kind, m.Feedback.score.isnot(None))
            .order_by(m.Feedback.created_at)
        )
        if since is not None:
            _require_aware(since, "since")
            stmt = stmt.where(m.Feedback.created_at >= since)
        with self._session() as s:
            return [(_utc(at), int(score)) for at, score in s.execute(stmt).all()]

    # ---- consents -------------------------------------------------------------------------
    @guarded
    def set_consent(
        self, sender_id: str, purpose: str, granted: bool, *, source: str | None = None
    ) -> ConsentDTO:
        """Append a consent decision (history is kept; the newest row is in force)."""
        _require(purpose, "purpose")
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            row = m.Consent(
                guest_id=guest.id, purpose=purpose, granted=bool(granted), source=source
            )
            s.add(row)
            s.flush()
            return _dto(ConsentDTO, row)

    @guarded
    def has_consent(self, sender_id: str, purpose: str) -> bool:
        """The newest decision for `purpose`; no decision means no consent."""
        stmt = (
            select(m.Consent.granted)
            .join(m.Guest, m.Consent.guest_id == m.Guest.id)
            .where(guest_is(sender_id), m.Consent.purpose == purpose)
            .order_by(m.Consent.created_at.desc(), m.Consent.id.desc())
            .limit(1)
        )
        with self._session() as s:
            return bool(s.execute(stmt).scalar_one_or_none())

    @guarded
    def consents(self, sender_id: str) -> list[ConsentDTO]:
        """The whole history, oldest first."""
        stmt = (
            select(m.Consent)
            .join(m.Guest, m.Consent.guest_id == m.Guest.id)
            .where(guest_is(sender_id))
            .order_by(m.Consent.created_at, m.Consent.id)
        )
        with self._session() as s:
            return [_dto(ConsentDTO, c) for c in s.execute(stmt).scalars()]

    # ---- audit ----------------------------------------------------------------------------
    @guarded
    def record_audit(
        self,
        actor: str,
        action: str,
        subject_type: str | None = None,
        subject_id: Any = None,
        detail: Any = None,
    ) -> None:
        """Append one audit entry (e.g. `record_audit("advisor:li", "ticket.resolve", "ticket", 7)`)."""
        with self._session() as s:
            s.add(self._audit_row(actor, action, subject_type, subject_id, detail))

    @staticmethod
    def _audit_row(actor, action, subject_type, subject_id, detail) -> m.AuditLog:
        _require(actor, "actor")
        _require(action, "action")
        return m.AuditLog(
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=None if subject_id is None else str(subject_id),
            detail=to_jsonable(detail),
        )

    @guarded
    def audit_entries(
        self,
        *,
        subject_type: str | None = None,
        subject_id: Any = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[AuditDTO]:
        """Newest first, optionally filtered."""
        stmt = select(m.AuditLog).order_by(m.AuditLog.created_at.desc(), m.AuditLog.id.desc())
        if subject_type is not None:
            stmt = stmt.where(m.AuditLog.subject_type == subject_type)
        if subject_id is not None:
            stmt = stmt.where(m.AuditLog.subject_id == str(subject_id))
        if action is not None:
            stmt = stmt.where(m.AuditLog.action == action)
        with self._session() as s:
            return [_dto(AuditDTO, a) for a in s.execute(stmt.limit(limit)).scalars()]

    # ---- the whole profile ----------------------------------------------------------------
    @guarded
    def profile(
        self, sender_id: str, *, actor: str | None = None, reason: str | None = None
    ) -> dict:
        """Everything held about a guest as JSON-ready data (also the PIPL export).

        Phone and document numbers are masked. With `actor` (a staff member or tool, e.g.
        "cli:alice" or "advisor:zhangsan") the access is written to the audit log in the same
        transaction: no record, no profile. Raises GuestNotFound.
        """
        with self._session() as s:
            guest = self._require_guest(s, sender_id)
            gid = guest.id

            def rows(model, *order):
                return s.execute(
                    select(model).where(model.guest_id == gid).order_by(*order)
                ).scalars()

            bookings = [
                _dto(BookingDTO, b) for b in rows(m.Booking, m.Booking.check_in, m.Booking.id)
            ]
            tags = [
                _tag_dto(t)
                for t in rows(m.PreferenceTag, m.PreferenceTag.category, m.PreferenceTag.id)
            ]
            orders = [_dto(OrderDTO, o) for o in rows(m.Order, m.Order.created_at, m.Order.id)]
            tickets = [_dto(TicketDTO, t) for t in rows(m.Ticket, m.Ticket.created_at, m.Ticket.id)]
            handoffs = [
                _dto(HandoffDTO, h) for h in rows(m.Handoff, m.Handoff.created_at, m.Handoff.id)
            ]
            consents = [
                _dto(ConsentDTO, c) for c in rows(m.Consent, m.Consent.created_at, m.Consent.id)
            ]
            feedback = [
                _dto(FeedbackDTO, f) for f in rows(m.Feedback, m.Feedback.created_at, m.Feedback.id)
            ]
            linked = [
                {"kind": i.kind, "value": i.value, "source": i.source, "created_at": i.created_at}
                for i in rows(m.GuestIdentity, m.GuestIdentity.id)
            ]
            facts_row = s.get(m.GuestFacts, gid)
            facts = (
                None
                if facts_row is None
                else {
                    c.name: getattr(facts_row, c.name)
                    for c in m.GuestFacts.__table__.columns
                    if c.name != "guest_id"
                }
            )
            condition = self._pages_condition(self._page_subjects(s, gid))
            pages = (
                []
                if condition is None
                else [
                    _dto(PageDTO, p)
                    for p in s.execute(
                        select(m.Page).where(condition).order_by(m.Page.created_at, m.Page.id)
                    ).scalars()
                ]
            )
            if actor is not None:
                s.add(
                    self._audit_row(
                        actor,
                        "profile.view",
                        "guest",
                        sender_id,
                        {"reason": reason} if reason else None,
                    )
                )
            dto = _dto(GuestDTO, guest)

        consent_state: dict[str, bool] = {}
        for consent in consents:  # oldest first: the newest decision overwrites
            consent_state[consent.purpose] = consent.granted
        return to_jsonable(
            {
                "sender_id": dto.sender_id,
                "guest": {
                    "id": dto.id,
                    "sender_id": dto.sender_id,
                    "display_name": dto.display_name,
                    "tier": dto.tier,
                    "phone": mask_phone(dto.phone),
                    "id_number": mask_document(dto.id_number),
                    "passport_number": mask_document(dto.passport_number),
                    "health_notes": dto.health_notes,
                    "birthday": dto.birthday,
                    "is_demo": dto.is_demo,
                    "created_at": dto.created_at,
                    "updated_at": dto.updated_at,
                },
                "tier": dto.tier,
                "identities": {name: getattr(dto, name) for name in IDENTITY_FIELDS},
                "linked_identities": linked,  # other senders/WeCom ids of this person
                "facts": facts,  # derived from the bookings (bot.bookings.facts)
                "tags": [{**to_jsonable(t), "source_message": t.source_message} for t in tags],
                "bookings": [{**to_jsonable(b), "nights": b.nights} for b in bookings],
                "orders": orders,
                "tickets": tickets,
                "handoffs": handoffs,
                "consents": consents,
                "consent_state": consent_state,
                "feedback": [{**to_jsonable(f), "text": f.text} for f in feedback],
                "pages": pages,
            }
        )

    # ---- helpers --------------------------------------------------------------------------
    def _own_booking(self, s: Session, guest: m.Guest, booking_id: int) -> m.Booking:
        booking = self._require_row(s, m.Booking, booking_id)
        if booking.guest_id != guest.id:
            raise ValueError(f"booking {booking_id} does not belong to {guest.sender_id!r}")
        return booking

    @staticmethod
    def _require_row(s: Session, model, row_id: int):
        row = s.get(model, row_id)
        if row is None:
            raise NotFound(f"no {model.__tablename__[:-1]} with id {row_id}")
        return row

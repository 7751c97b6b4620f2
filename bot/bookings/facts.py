"""Profile facts derived from a guest's bookings: what segments and touchpoints select on.

Stored one row per guest in `guest_facts` (model `bot.crm.models.GuestFacts`), beside the
profile, so a segment is one SQL query instead of an aggregate over every booking:

| column | meaning |
|---|---|
| `stays` | bookings that were stayed: status `checked_in` or `completed` (已入住/已离店) |
| `nights` | nights of those stays |
| `total_spend` | sum of their `amount` (CNY; a stay without an amount counts 0) |
| `spend_12m` | the same for stays whose check-out is within the 365 days up to `as_of` |
| `first_stay`, `last_stay` | check-in of the first and of the latest stay (None: never stayed) |
| `next_stay` | check-in of the soonest booked/checked-in stay not over at `as_of` |
| `cancelled` | cancelled bookings |
| `birthday` | `guests.birthday` (from an import, or from what the guest said in chat) |
| `tier` | `guests.tier` (会员等级, the newest import's value) |
| `channel` | channel of the newest non-cancelled booking (direct, ctrip, ...); `channels` all of them |
| `properties` | property ids stayed at, sorted |
| `as_of`, `computed_at` | the China date the facts describe, and when they were computed |

API (everything takes a SQLAlchemy `Session` or an engine/URL; nothing runs at import):
- `compute_facts(bookings, *, tier, birthday, as_of) -> Facts`: pure, for tests and previews.
- `refresh_facts(session, guest_ids, *, as_of=None)`: recompute and upsert the rows of these
  guests inside the caller's transaction (the importer, the sync endpoint and merges call it,
  so the facts change in the same commit as the bookings).
- `FactsService(engine_or_url)`: `.get(sender_id) -> Facts | None`, `.refresh_all(as_of=None)`
  (a daily run keeps `spend_12m` and `next_stay` current as time passes: `concierge bookings
  facts --refresh`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm import models as m
from bot.crm.db import EngineOrUrl, as_engine, make_session_factory, session_scope
from bot.crm.errors import guarded
from bot.core.time import china_today
from bot.crm.queries import guest_is

ZERO = Decimal("0.00")
SPEND_WINDOW = dt.timedelta(days=365)


@dataclass(frozen=True)
class Facts:
    stays: int
    nights: int
    total_spend: Decimal
    spend_12m: Decimal
    first_stay: dt.date | None
    last_stay: dt.date | None
    next_stay: dt.date | None
    cancelled: int
    birthday: dt.date | None
    tier: str | None
    channel: str | None
    channels: tuple[str, ...]
    properties: tuple[str, ...]
    as_of: dt.date

    def to_json(self) -> dict:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Decimal):
                out[key] = float(value)
            elif isinstance(value, dt.date):
                out[key] = value.isoformat()
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out


_FACT_FIELDS = fields(Facts)


def compute_facts(
    bookings: Iterable, *, tier: str | None, birthday: dt.date | None, as_of: dt.date
) -> Facts:
    """Facts of one guest from their bookings (ORM rows or DTOs: any object with status,
    check_in, check_out, amount, channel, property_id)."""
    bookings = list(bookings)
    stays = [b for b in bookings if b.status in m.STAY_BOOKING_STATUSES]
    live = sorted(
        (b for b in bookings if b.status != "cancelled"), key=lambda b: (b.check_in, b.check_out)
    )
    window_start = as_of - SPEND_WINDOW
    upcoming = [
        b.check_in
        for b in bookings
        if b.status in m.ACTIVE_BOOKING_STATUSES and b.check_out >= as_of
    ]
    return Facts(
        stays=len(stays),
        nights=sum((b.check_out - b.check_in).days for b in stays),
        total_spend=_money(b.amount for b in stays),
        spend_12m=_money(b.amount for b in stays if window_start < b.check_out <= as_of),
        first_stay=min((b.check_in for b in stays), default=None),
        last_stay=max((b.check_in for b in stays), default=None),
        next_stay=min(upcoming, default=None),
        cancelled=sum(1 for b in bookings if b.status == "cancelled"),
        birthday=birthday,
        tier=tier,
        channel=next((b.channel for b in reversed(live) if b.channel), None),
        channels=tuple(sorted({b.channel for b in live if b.channel})),
        properties=tuple(sorted({b.property_id for b in stays})),
        as_of=as_of,
    )


def _money(values: Iterable) -> Decimal:
    return sum((Decimal(v) for v in values if v is not None), ZERO).quantize(ZERO)


def refresh_facts(
    session: Session, guest_ids: Iterable[int], *, as_of: dt.date | None = None
) -> int:
    """Recompute the facts of `guest_ids` in the caller's transaction; returns how many."""
    as_of = as_of or china_today()
    ids = sorted(set(guest_ids))
    done = 0
    for start in range(0, len(ids), 500):  # bounded IN lists
        chunk = ids[start : start + 500]
        guests = {
            g.id: g
            for g in session.execute(
                select(m.Guest.id, m.Guest.tier, m.Guest.birthday).where(m.Guest.id.in_(chunk))
            )
        }
        by_guest: dict[int, list] = {gid: [] for gid in guests}
        for b in session.execute(
            select(
                m.Booking.guest_id,
                m.Booking.status,
                m.Booking.check_in,
                m.Booking.check_out,
                m.Booking.amount,
                m.Booking.channel,
                m.Booking.property_id,
            ).where(m.Booking.guest_id.in_(chunk))
        ):
            by_guest[b.guest_id].append(b)
        existing = {
            row.guest_id: row
            for row in session.execute(
                select(m.GuestFacts).where(m.GuestFacts.guest_id.in_(chunk))
            ).scalars()
        }
        for gid, guest in guests.items():
            facts = compute_facts(
                by_guest[gid], tier=guest.tier, birthday=guest.birthday, as_of=as_of
            )
            row = existing.get(gid)
            if row is None:
                row = m.GuestFacts(guest_id=gid)
                session.add(row)
            _apply(row, facts)
            done += 1
    session.flush()
    return done


def _apply(row: m.GuestFacts, facts: Facts) -> None:
    for f in _FACT_FIELDS:
        value = getattr(facts, f.name)
        value = list(value) if isinstance(value, tuple) else value
        if getattr(row, f.name) != value:  # unchanged columns are not written again
            setattr(row, f.name, value)
    row.computed_at = m.utcnow()


def _from_row(row: m.GuestFacts) -> Facts:
    return Facts(
        stays=row.stays,
        nights=row.nights,
        total_spend=Decimal(row.total_spend),
        spend_12m=Decimal(row.spend_12m),
        first_stay=row.first_stay,
        last_stay=row.last_stay,
        next_stay=row.next_stay,
        cancelled=row.cancelled,
        birthday=row.birthday,
        tier=row.tier,
        channel=row.channel,
        channels=tuple(row.channels or ()),
        properties=tuple(row.properties or ()),
        as_of=row.as_of,
    )


class FactsService:
    """Read and refresh the stored facts (one instance per process, built at its entry point)."""

    def __init__(self, engine_or_url: EngineOrUrl = None):
        self.engine = as_engine(engine_or_url)
        self._factory = make_session_factory(self.engine)

    @guarded
    def get(self, sender_id: str) -> Facts | None:
        """The stored facts of the guest (None: unknown guest or never computed)."""
        with session_scope(self._factory) as s:
            row = s.execute(
                select(m.GuestFacts)
                .join(m.Guest, m.Guest.id == m.GuestFacts.guest_id)
                .where(guest_is(sender_id))
                .limit(1)
            ).scalar_one_or_none()
            return _from_row(row) if row else None

    @guarded
    def refresh(self, sender_id: str, *, as_of: dt.date | None = None) -> Facts | None:
        """Recompute one guest's facts now (e.g. after a birthday was stated in chat)."""
        with session_scope(self._factory) as s:
            gid = s.execute(
                select(m.Guest.id).where(guest_is(sender_id)).order_by(m.Guest.id).limit(1)
            ).scalar_one_or_none()
            if gid is None:
                return None
            refresh_facts(s, [gid], as_of=as_of)
        return self.get(sender_id)

    @guarded
    def refresh_all(self, *, as_of: dt.date | None = None, batch: int = 2000) -> int:
        """Recompute every guest's facts (time moves spend_12m and next_stay); returns the count."""
        total, last_id = 0, 0
        while True:
            with session_scope(self._factory) as s:
                ids: Sequence[int] = (
                    s.execute(
                        select(m.Guest.id)
                        .where(m.Guest.id > last_id)
                        .order_by(m.Guest.id)
                        .limit(batch)
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    return total
                total += refresh_facts(s, ids, as_of=as_of)
                last_id = ids[-1]

"""What segments are evaluated on: one `GuestFacts` per guest, read in a handful of bulk queries
(guests, bookings, active tags, latest marketing consent, open complaints, recent interactions),
never one query per guest, so a count over 100,000 guests stays a matter of seconds.

The booking figures (stays, nights, spend, first/last/next stay, channel, properties) are the
bookings import's own definitions: `bot.bookings.facts.compute_facts`, run on the bookings read
here (the stored `guest_facts` rows are as of their last refresh; a segment is evaluated at the
caller's `today`). A stay is a booking `checked_in` or `completed`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Optional

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.bookings.facts import Facts, compute_facts
from bot.crm import models as m

MARKETING = "marketing"


@dataclass
class Stay:
    booking_id: int
    property_id: str
    city: Optional[str]
    check_in: dt.date
    check_out: dt.date
    status: str
    purpose: Optional[str]
    amount: Optional[float] = None
    channel: Optional[str] = None


@dataclass
class GuestFacts:
    id: int
    sender_id: str
    name: Optional[str]
    tier: str
    points: int
    birthday: Optional[dt.date]
    owner_userid: Optional[str]
    external_userid: Optional[str]
    kf_external_userid: Optional[str]
    kf_open_kfid: Optional[str]
    is_demo: bool
    stays: list[Stay] = field(default_factory=list)  # completed, oldest first
    upcoming: list[Stay] = field(default_factory=list)  # booked / checked in, soonest first
    tags: set[str] = field(default_factory=set)  # "category:value" and bare values
    tag_pairs: list[tuple[str, str]] = field(default_factory=list)
    marketing_consent: Optional[bool] = None  # None: never asked
    open_complaints: int = 0
    last_interaction: Optional[dt.datetime] = None
    bookings: list[Stay] = field(default_factory=list, repr=False)  # every booking
    as_of: Optional[dt.date] = None
    _booking_facts: Optional[Facts] = field(default=None, repr=False)

    @property
    def booking_facts(self) -> Facts:
        """bot.bookings.facts as of the evaluation day, computed on first use (most segments
        never need spend, and computing it for 100,000 guests is a third of a count)."""
        if self._booking_facts is None:
            self._booking_facts = compute_facts(
                self.bookings, tier=self.tier, birthday=self.birthday, as_of=self.as_of
            )
        return self._booking_facts

    # ---- derived ---------------------------------------------------------------------------
    @property
    def first_stay(self) -> Optional[dt.date]:
        return self.stays[0].check_in if self.stays else None

    @property
    def last_stay(self) -> Optional[Stay]:
        return self.stays[-1] if self.stays else None

    @property
    def next_stay(self) -> Optional[Stay]:
        return self.upcoming[0] if self.upcoming else None

    def stays_since(self, day: dt.date) -> list[Stay]:
        return [s for s in self.stays if s.check_out >= day]

    @property
    def properties(self) -> set[str]:
        return {s.property_id for s in self.stays + self.upcoming}

    @property
    def cities(self) -> set[str]:
        return {s.city for s in self.stays + self.upcoming if s.city}

    @property
    def purposes(self) -> set[str]:
        return {s.purpose for s in self.stays + self.upcoming if s.purpose}


ALL_NEEDS = frozenset({"bookings", "tags", "consent", "complaints", "interactions"})


def load_facts(
    engine: Engine,
    today: dt.date,
    *,
    guest_ids: Optional[Iterable[int]] = None,
    demo: Optional[bool] = None,
    needs: Iterable[str] = ALL_NEEDS,
    tiers: Optional[Iterable[str]] = None,
) -> list[GuestFacts]:
    """Facts of every guest (or of `guest_ids`, or of the guests in `tiers`), as of the China
    date `today`. `needs` limits what is read besides the guest row (a segment on tier and
    consent reads no bookings): bookings, tags, consent, complaints, interactions."""
    needs = frozenset(needs)
    unknown = needs - ALL_NEEDS
    if unknown:
        raise ValueError(f"unknown facts {sorted(unknown)}")
    ids = None if guest_ids is None else list(guest_ids)
    g = m.Guest
    scope = None  # the guests wanted, as a subquery the other tables are filtered on
    if ids is not None:
        scope = ids
    elif tiers is not None or demo is not None:
        scope_stmt = select(g.id)
        if tiers is not None:
            scope_stmt = scope_stmt.where(g.tier.in_(list(tiers)))
        if demo is not None:
            scope_stmt = scope_stmt.where(g.is_demo.is_(demo))
        scope = scope_stmt.scalar_subquery()

    def limit(stmt, column):
        return stmt if scope is None else stmt.where(column.in_(scope))

    guest_stmt = limit(
        select(
            g.id,
            g.sender_id,
            g.display_name,
            g.tier,
            g.points,
            g.birthday,
            g.owner_userid,
            g.wecom_external_userid,
            g.kf_external_userid,
            g.kf_open_kfid,
            g.is_demo,
        ),
        g.id,
    )
    b = m.Booking
    booking_cols = [
        b.id,
        b.guest_id,
        b.property_id,
        b.city,
        b.check_in,
        b.check_out,
        b.status,
        b.purpose,
        b.amount,
        b.channel,
    ]
    if "interactions" in needs:
        booking_cols.append(b.created_at)
    since = dt.datetime.combine(today - dt.timedelta(days=90), dt.time(0), tzinfo=dt.timezone.utc)
    with engine.connect() as conn:
        facts: dict[int, GuestFacts] = {}
        for row in conn.execute(guest_stmt.order_by(g.id)):
            facts[row.id] = GuestFacts(
                id=row.id,
                sender_id=row.sender_id,
                name=row.display_name,
                tier=row.tier,
                points=row.points or 0,
                birthday=row.birthday,
                owner_userid=row.owner_userid,
                external_userid=row.wecom_external_userid,
                kf_external_userid=row.kf_external_userid,
                kf_open_kfid=row.kf_open_kfid,
                is_demo=bool(row.is_demo),
                as_of=today,
            )
        last_touch: dict[int, dt.datetime] = {}

        def touch(gid: int, when) -> None:
            if when is None:
                return
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            if gid not in last_touch or when > last_touch[gid]:
                last_touch[gid] = when

        if "bookings" in needs or "interactions" in needs:
            for row in conn.execute(
                limit(select(*booking_cols), b.guest_id).order_by(b.guest_id, b.check_in)
            ):
                f = facts.get(row.guest_id)
                if f is None:
                    continue
                stay = Stay(
                    row.id,
                    row.property_id,
                    row.city,
                    row.check_in,
                    row.check_out,
                    row.status,
                    row.purpose,
                    float(row.amount) if row.amount is not None else None,
                    row.channel,
                )
                f.bookings.append(stay)
                if row.status in m.STAY_BOOKING_STATUSES and row.check_out <= today:
                    f.stays.append(stay)
                elif row.status in m.ACTIVE_BOOKING_STATUSES and row.check_out >= today:
                    f.upcoming.append(stay)
                if "interactions" in needs:
                    touch(row.guest_id, row.created_at)
        if "tags" in needs:
            t = m.PreferenceTag
            for row in conn.execute(
                limit(select(t.guest_id, t.category, t.value).where(t.active.is_(True)), t.guest_id)
            ):
                f = facts.get(row.guest_id)
                if f is not None and row.category not in m.SENSITIVE_TAG_CATEGORIES:
                    f.tags.update((row.value, f"{row.category}:{row.value}"))
                    f.tag_pairs.append((row.category, row.value))
        if "consent" in needs:
            c = m.Consent
            latest = (
                limit(
                    select(c.guest_id, func.max(c.id).label("id")).where(c.purpose == MARKETING),
                    c.guest_id,
                )
                .group_by(c.guest_id)
                .subquery()
            )
            stmt = select(c.guest_id, c.granted).join(latest, c.id == latest.c.id)
            for row in conn.execute(stmt):
                if row.guest_id in facts:
                    facts[row.guest_id].marketing_consent = bool(row.granted)
        if "complaints" in needs:
            k = m.Ticket
            for row in conn.execute(
                limit(
                    select(k.guest_id, func.count()).where(
                        k.kind.in_(("complaint", "service_recovery")),
                        k.status.in_(("open", "acknowledged")),
                    ),
                    k.guest_id,
                ).group_by(k.guest_id)
            ):
                if row[0] in facts:
                    facts[row[0]].open_complaints = row[1]
        if "interactions" in needs:
            for model in (m.Order, m.Ticket, m.Feedback):
                for row in conn.execute(
                    limit(
                        select(model.guest_id, func.max(model.created_at)).where(
                            model.created_at >= since
                        ),
                        model.guest_id,
                    ).group_by(model.guest_id)
                ):
                    touch(row[0], row[1])
    for gid, when in last_touch.items():
        if gid in facts:
            facts[gid].last_interaction = when
    return list(facts.values())


def count_guests(engine: Engine, demo: Optional[bool] = None) -> int:
    stmt = select(func.count()).select_from(m.Guest)
    if demo is not None:
        stmt = stmt.where(m.Guest.is_demo.is_(demo))
    with engine.connect() as conn:
        return conn.execute(stmt).scalar()


def guests_outside_tiers(engine: Engine, tiers: Iterable[str], limit: int) -> list[tuple]:
    """(sender_id, name) of up to `limit` guests not in `tiers` (a preview's left-out list)."""
    g = m.Guest
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(g.sender_id, g.display_name)
                .where(g.tier.notin_(list(tiers)))
                .order_by(g.id)
                .limit(limit)
            )
        ]

"""Database side of paging: clocks, steps, notes (bot/paging/models.py), synchronous and short.

Every method is one transaction and returns frozen DTOs. Async callers (the worker, the app
command handler) run them through `asyncio.to_thread`.

Concurrency, the part that makes "exactly once" true:
- A clock is created at most once per subject: `UNIQUE(subject_type, subject_id)`; a second
  creator gets IntegrityError and reads the existing clock instead.
- A step is claimed by moving it pending → firing with `UPDATE ... WHERE status = 'pending'`
  (compare-and-set: exactly one claimer sees rowcount 1). On PostgreSQL the candidates are first
  selected `FOR UPDATE SKIP LOCKED`, so several workers take disjoint batches without waiting on
  each other. SQLite has no row locks: there the compare-and-set alone decides (and one worker
  is the supported set-up, since SQLite serialises writers anyway).
- A claim carries a lease. A worker that dies mid-step leaves it `firing`; once the lease has
  run out any worker puts it back to pending and fires it (skipping recipients already recorded
  as delivered).
- `UNIQUE(subject_type, subject_id, step)`: a step exists once, so it cannot be sent twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.core.db import EngineOrUrl, as_engine, make_session_factory, session_scope
from bot.core.time import china_date, utcnow
from bot.crm.models import Page  # the pages table: written here only (its owner is paging)
from bot.paging import clocks as rules
from bot.paging.clocks import ClockPlan
from bot.paging.models import SlaClock, SlaNote, SlaStep
from bot.paging.ports import GuestRecords, Stay, Subject
from bot.paging.texts import case_summary, gone_reason

log = logging.getLogger(__name__)

OPEN_SUBJECT_STATUS = {"ticket": ("open",), "order": ("requested",), "handoff": ("requested",)}
# Targets of the notices advisors' actions create (not usable in the policy file).
GUEST_ACK, GUEST_RESOLVED, GUEST_TAKEOVER, GUEST_HANDBACK = (
    "guest_ack",
    "guest_resolved",
    "guest_takeover",
    "guest_handback",
)
# The one message to the advisor who had a case when its subject went away (the guest
# cancelled the order); it fires although the clock is cancelled.
ADVISOR_CANCELLED = "advisor_cancelled"
# Subject statuses that mean "gone": the clock is cancelled (not resolved) when one is seen.
GONE_SUBJECT_STATUS = {"order": ("cancelled",)}


def _utc(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class SubjectInfo:
    subject_type: str
    subject_id: int
    guest_id: int
    sender_id: str
    sla_class: str
    property_id: Optional[str]
    summary: str
    created_at: dt.datetime
    status: str
    nature: Optional[str] = None  # a complaint's: service_failure | force_majeure


@dataclass(frozen=True)
class PastComplaint:
    """An earlier complaint of the same guest, for the flag on later pages and the routing."""

    ticket_id: int
    created_at: dt.datetime
    advisor: Optional[str]  # who handled it (resolved, else took it)
    compensation: Optional[str]  # what the advisor recorded as offered (补偿), the latest


@dataclass(frozen=True)
class ClockDTO:
    id: int
    subject_type: str
    subject_id: int
    guest_id: int
    sender_id: str
    sla_class: str
    property_id: str
    summary: Optional[str]
    created_at: dt.datetime
    started_at: dt.datetime
    ack_due_at: dt.datetime
    resolve_due_at: Optional[dt.datetime]
    state: str
    paged_userid: Optional[str]
    assignee_userid: Optional[str]
    acknowledged_at: Optional[dt.datetime]
    acknowledged_by: Optional[str]
    takeover_userid: Optional[str]
    takeover_at: Optional[dt.datetime]
    handed_back_at: Optional[dt.datetime]
    resolved_at: Optional[dt.datetime]
    resolved_by: Optional[str]
    resolution: Optional[str]
    rating: Optional[int]
    rated_at: Optional[dt.datetime]

    @property
    def is_open(self) -> bool:
        return self.state in rules.OPEN_STATES

    @property
    def holder(self) -> Optional[str]:
        """Who has it now: the advisor talking to the guest, else the assignee, else the paged."""
        return self.takeover_userid or self.assignee_userid or self.paged_userid


@dataclass(frozen=True)
class StepDTO:
    id: int
    clock_id: int
    subject_type: str
    subject_id: int
    step: str
    notify: tuple
    until: str
    due_at: dt.datetime
    status: str
    late: Optional[bool]
    claimed_by: Optional[str]
    lease_until: Optional[dt.datetime]
    attempts: int
    fired_at: Optional[dt.datetime]
    recipients: tuple
    delivered: tuple
    error: Optional[str]


@dataclass(frozen=True)
class NoteDTO:
    id: int
    clock_id: int
    author: str
    kind: str
    text: str
    created_at: dt.datetime


def _clock_dto(row: SlaClock) -> ClockDTO:
    values = {}
    for f in dataclasses.fields(ClockDTO):
        value = getattr(row, f.name)
        values[f.name] = _utc(value) if isinstance(value, dt.datetime) else value
    return ClockDTO(**values)


def _step_dto(row: SlaStep) -> StepDTO:
    return StepDTO(
        id=row.id,
        clock_id=row.clock_id,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        step=row.step,
        notify=tuple(row.notify or ()),
        until=row.until,
        due_at=_utc(row.due_at),
        status=row.status,
        late=row.late,
        claimed_by=row.claimed_by,
        lease_until=_utc(row.lease_until),
        attempts=row.attempts,
        fired_at=_utc(row.fired_at),
        recipients=tuple(row.recipients or ()),
        delivered=tuple(row.delivered or ()),
        error=row.error,
    )


def _note_dto(row: SlaNote) -> NoteDTO:
    return NoteDTO(row.id, row.clock_id, row.author, row.kind, row.text, _utc(row.created_at))


class ClockNotFound(LookupError):
    def __init__(self, case_id: Any):
        super().__init__(f"no case #{case_id}")
        self.case_id = case_id


class PagingStore:
    """Clocks, steps, notes and pages. `PagingStore(url_or_engine, records)`; thread-safe.

    Guests' tickets, orders, handoffs and bookings are read through `records` (the port in
    bot.paging.ports, which bot.crm implements); by default the CRM's, on the same database."""

    def __init__(self, engine_or_url: EngineOrUrl = None, records: Optional[GuestRecords] = None):
        self._owns_engine = not isinstance(engine_or_url, Engine)
        self.engine: Engine = as_engine(engine_or_url)
        self._factory = make_session_factory(self.engine)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        if records is None:
            from bot.crm.paging_records import CRMGuestRecords  # the default adapter

            records = CRMGuestRecords(self.engine)
        self.records: GuestRecords = records

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()

    def _session(self):
        return session_scope(self._factory)

    # ---- subjects (read through the GuestRecords port) ----------------------------------------
    @staticmethod
    def _property_of(subject: Subject, stays: list[Stay], now: dt.datetime) -> Optional[str]:
        """The property the SLA is measured at: the order's, the ticket's booking's, else the
        guest's current stay, else the next one, else the latest (None: the default)."""
        if subject.subject_type == "order" and subject.property_id:
            return subject.property_id
        for stay in stays:
            if subject.booking_id and stay.booking_id == subject.booking_id:
                return stay.property_id
        today = china_date(now)
        current = [b for b in stays if b.check_in <= today <= b.check_out]
        upcoming = [b for b in stays if b.check_in > today]
        pick = (current or upcoming or stays[-1:] or [None])[0]
        return pick.property_id if pick else None

    def _info(
        self, subject: Subject, stays: dict[int, list[Stay]], now: dt.datetime
    ) -> SubjectInfo:
        return SubjectInfo(
            subject_type=subject.subject_type,
            subject_id=subject.subject_id,
            guest_id=subject.guest_id,
            sender_id=subject.sender_id,
            sla_class=subject.sla_class or "",
            property_id=self._property_of(subject, stays.get(subject.guest_id, []), now),
            summary=case_summary(subject.subject_type, subject.details),
            created_at=_utc(subject.created_at),
            status=subject.status,
            nature=subject.nature,
        )

    def unclocked_subjects(
        self, since: dt.datetime, now: dt.datetime, limit: int = 500
    ) -> list[SubjectInfo]:
        """New tickets/orders/handoffs with an SLA class, created after `since`, still open, and
        without a clock yet (oldest first)."""
        found: list[Subject] = []
        for subject_type, statuses in OPEN_SUBJECT_STATUS.items():
            # A subject created after `since` that has a clock got it after `since` too: these
            # are all the subjects to leave out, however many rows the CRM holds.
            with self._session() as s:
                clocked = set(
                    s.execute(
                        select(SlaClock.subject_id).where(
                            SlaClock.subject_type == subject_type, SlaClock.created_at >= since
                        )
                    ).scalars()
                )
            found.extend(
                self.records.open_subjects(
                    subject_type, statuses, since, exclude_ids=clocked, limit=limit
                )
            )
        stays = self.records.stays([f.guest_id for f in found])
        infos = [self._info(f, stays, now) for f in found]
        return sorted(infos, key=lambda i: i.created_at)[:limit]

    def subject(
        self, subject_type: str, subject_id: int, now: dt.datetime
    ) -> Optional[SubjectInfo]:
        found = self.records.subject(subject_type, subject_id)
        if found is None or not found.sla_class:
            return None
        return self._info(found, self.records.stays([found.guest_id]), now)

    def past_complaints(
        self, guest_id: int, before: dt.datetime, exclude_ticket: Optional[int] = None
    ) -> list[PastComplaint]:
        """The guest's complaints opened before `before` (newest first), with who handled each
        and what was offered: SPEC's "after a complaint, a dedicated advisor and priority"."""
        tickets = self.records.complaints_before(guest_id, before, exclude_ticket, 20)
        if not tickets:
            return []
        with self._session() as s:
            clocks = {
                c.subject_id: c
                for c in s.execute(
                    select(SlaClock).where(
                        SlaClock.subject_type == "ticket",
                        SlaClock.subject_id.in_([t for t, _ in tickets]),
                    )
                ).scalars()
            }
            offered: dict[int, str] = {}
            if clocks:
                for clock_id, text in s.execute(
                    select(SlaNote.clock_id, SlaNote.text)
                    .where(
                        SlaNote.clock_id.in_([c.id for c in clocks.values()]),
                        SlaNote.kind == "compensation",
                    )
                    .order_by(SlaNote.id)
                ).all():
                    offered[clock_id] = text
            out = []
            for ticket_id, created in tickets:
                clock = clocks.get(ticket_id)
                advisor = (
                    clock.resolved_by or clock.takeover_userid or clock.assignee_userid
                    if clock is not None
                    else None
                )
                out.append(
                    PastComplaint(
                        ticket_id,
                        _utc(created),
                        advisor,
                        offered.get(clock.id) if clock is not None else None,
                    )
                )
            return out

    def ticket_media(self, ticket_id: int) -> list[tuple[int, str]]:
        """(media id, kind) of what the guest sent with this ticket (bot.guest_media)."""
        return self.records.ticket_media(ticket_id)

    # ---- pages (this store is the table's one writer) ---------------------------------------
    def forget_guest_pages(self, guest_id: int) -> int:
        """Delete the pages about a guest's tickets, orders and handoffs (erasure: run before the
        guest's rows go, while their ids can still be found). Returns how many went."""
        subjects = self.records.guest_subjects(guest_id)
        parts = [
            and_(Page.subject_type == kind, Page.subject_id.in_(ids))
            for kind, ids in subjects.items()
            if ids
        ]
        if not parts:
            return 0
        with self._session() as s:
            return (
                s.execute(
                    delete(Page).where(or_(*parts)).execution_options(synchronize_session=False)
                ).rowcount
                or 0
            )

    # ---- clocks ---------------------------------------------------------------------------
    def create_clock(self, info: SubjectInfo, plan: ClockPlan) -> tuple[ClockDTO, bool]:
        """The clock and its steps in one transaction; (clock, created). A subject that already
        has a clock returns that one with created=False."""
        try:
            with self._session() as s:
                clock = SlaClock(
                    subject_type=info.subject_type,
                    subject_id=info.subject_id,
                    guest_id=info.guest_id,
                    sender_id=info.sender_id,
                    sla_class=plan.sla_class,
                    property_id=plan.property_id,
                    summary=info.summary[:2000],
                    created_at=plan.created_at,
                    started_at=plan.started_at,
                    ack_due_at=plan.ack_due_at,
                    resolve_due_at=plan.resolve_due_at,
                    state=rules.RUNNING,
                )
                s.add(clock)
                s.flush()
                for step in plan.steps:
                    s.add(
                        SlaStep(
                            clock_id=clock.id,
                            subject_type=info.subject_type,
                            subject_id=info.subject_id,
                            step=step.name,
                            notify=list(step.notify),
                            until=step.until,
                            due_at=step.due_at,
                            status=rules.PENDING,
                            attempts=0,
                        )
                    )
                s.flush()
                return _clock_dto(clock), True
        except IntegrityError:
            existing = self.clock_for(info.subject_type, info.subject_id)
            if existing is None:
                raise
            return existing, False

    def create_clocks(self, items: Sequence[tuple[SubjectInfo, ClockPlan]]) -> list[ClockDTO]:
        """Many clocks at once; returns the ones *this* call created (a subject someone else
        already started is left alone). PostgreSQL: one transaction with
        `INSERT ... ON CONFLICT DO NOTHING RETURNING`; SQLite: one `create_clock` each."""
        if not items:
            return []
        if not self.is_postgres:
            created = []
            for info, plan in items:
                clock, was_created = self.create_clock(info, plan)
                if was_created:
                    created.append(clock)
            return created
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        now = utcnow()
        rows = [
            dict(
                subject_type=info.subject_type,
                subject_id=info.subject_id,
                guest_id=info.guest_id,
                sender_id=info.sender_id,
                sla_class=plan.sla_class,
                property_id=plan.property_id,
                summary=info.summary[:2000],
                created_at=plan.created_at,
                started_at=plan.started_at,
                ack_due_at=plan.ack_due_at,
                resolve_due_at=plan.resolve_due_at,
                state=rules.RUNNING,
                updated_at=now,
            )
            for info, plan in items
        ]
        plans = {(info.subject_type, info.subject_id): plan for info, plan in items}
        with self._session() as s:
            inserted = s.execute(
                pg_insert(SlaClock)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["subject_type", "subject_id"])
                .returning(SlaClock.id, SlaClock.subject_type, SlaClock.subject_id)
            ).all()
            steps = []
            for case_id, subject_type, subject_id in inserted:
                for step in plans[(subject_type, subject_id)].steps:
                    steps.append(
                        dict(
                            clock_id=case_id,
                            subject_type=subject_type,
                            subject_id=subject_id,
                            step=step.name,
                            notify=list(step.notify),
                            until=step.until,
                            due_at=step.due_at,
                            status=rules.PENDING,
                            attempts=0,
                            created_at=now,
                        )
                    )
            if steps:
                s.execute(SlaStep.__table__.insert(), steps)
            ids = [r[0] for r in inserted]
            if not ids:
                return []
            return [
                _clock_dto(c)
                for c in s.execute(
                    select(SlaClock).where(SlaClock.id.in_(ids)).order_by(SlaClock.id)
                ).scalars()
            ]

    def clock(self, case_id: int) -> ClockDTO:
        with self._session() as s:
            row = s.get(SlaClock, case_id)
            if row is None:
                raise ClockNotFound(case_id)
            return _clock_dto(row)

    def clock_for(self, subject_type: str, subject_id: int) -> Optional[ClockDTO]:
        with self._session() as s:
            row = s.execute(
                select(SlaClock).where(
                    SlaClock.subject_type == subject_type, SlaClock.subject_id == subject_id
                )
            ).scalar()
            return _clock_dto(row) if row else None

    def clocks(
        self,
        *,
        states: Iterable[str] | None = None,
        sender_id: str | None = None,
        holder: str | None = None,
        since: dt.datetime | None = None,
        sla_class: str | None = None,
        limit: int | None = None,
    ) -> list[ClockDTO]:
        stmt = select(SlaClock).order_by(SlaClock.id)
        if states is not None:
            stmt = stmt.where(SlaClock.state.in_(list(states)))
        if sender_id is not None:
            stmt = stmt.where(SlaClock.sender_id == sender_id)
        if holder is not None:
            stmt = stmt.where(
                or_(
                    SlaClock.takeover_userid == holder,
                    SlaClock.assignee_userid == holder,
                    and_(SlaClock.assignee_userid.is_(None), SlaClock.paged_userid == holder),
                )
            )
        if since is not None:
            stmt = stmt.where(SlaClock.created_at >= since)
        if sla_class is not None:
            stmt = stmt.where(SlaClock.sla_class == sla_class)
        if limit:
            stmt = stmt.limit(limit)
        with self._session() as s:
            return [_clock_dto(r) for r in s.execute(stmt).scalars()]

    def load(self, exclude_case: int | None = None) -> dict[str, int]:
        """Open cases per advisor (held or paged), for least-loaded picking; `exclude_case` leaves
        out the case being routed (its own page does not count against its advisor)."""
        holder = func.coalesce(
            SlaClock.takeover_userid, SlaClock.assignee_userid, SlaClock.paged_userid
        )
        stmt = select(holder, func.count()).where(
            SlaClock.state.in_(rules.OPEN_STATES), holder.isnot(None)
        )
        if exclude_case is not None:
            stmt = stmt.where(SlaClock.id != exclude_case)
        with self._session() as s:
            rows = s.execute(stmt.group_by(holder)).all()
        return {userid: count for userid, count in rows}

    def set_paged(self, case_id: int, userid: str) -> None:
        with self._session() as s:
            s.execute(
                update(SlaClock)
                .where(SlaClock.id == case_id)
                .values(paged_userid=userid, updated_at=utcnow())
            )

    def _locked_clock(self, s, case_id: int) -> SlaClock:
        stmt = select(SlaClock).where(SlaClock.id == case_id)
        if self.is_postgres:
            stmt = stmt.with_for_update()
        row = s.execute(stmt).scalar()
        if row is None:
            raise ClockNotFound(case_id)
        return row

    def _cancel_future_steps(
        self, s, case_id: int, untils: Sequence[str], now: dt.datetime, why: str
    ) -> int:
        """Steps not yet due are settled now; steps already due stay for the worker, which fires
        them unless the clock got where they wait for no later than their due time."""
        result = s.execute(
            update(SlaStep)
            .where(
                SlaStep.clock_id == case_id,
                SlaStep.status == rules.PENDING,
                SlaStep.until.in_(list(untils)),
                SlaStep.due_at > now,
            )
            .values(status=rules.SKIPPED, error=why)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    def _add_notice(self, s, clock: SlaClock, name: str, target: str, now: dt.datetime) -> None:
        """A one-off notice (to the guest) delivered by the step machinery, exactly once."""
        exists = s.execute(
            select(SlaStep.id).where(
                SlaStep.subject_type == clock.subject_type,
                SlaStep.subject_id == clock.subject_id,
                SlaStep.step == name,
            )
        ).first()
        if exists:
            return
        s.add(
            SlaStep(
                clock_id=clock.id,
                subject_type=clock.subject_type,
                subject_id=clock.subject_id,
                step=name,
                notify=[target],
                until="none",
                due_at=now,
                status=rules.PENDING,
                attempts=0,
            )
        )

    def _touch_pages(self, s, clock: SlaClock, now: dt.datetime) -> None:
        s.execute(
            update(Page)
            .where(
                Page.subject_type == clock.subject_type,
                Page.subject_id == clock.subject_id,
                Page.acknowledged_at.is_(None),
            )
            .values(acknowledged_at=now)
            .execution_options(synchronize_session=False)
        )

    def acknowledge(
        self, case_id: int, userid: str, now: dt.datetime, *, notice: bool = True
    ) -> tuple[ClockDTO, str]:
        """接单. Returns (clock, outcome): 'acknowledged', 'already_yours', 'taken' (by someone
        else: the clock shows who), or 'closed'."""
        with self._session() as s:
            clock = self._locked_clock(s, case_id)
            if clock.state not in rules.OPEN_STATES:
                return _clock_dto(clock), "closed"
            if clock.state == rules.ACKNOWLEDGED:
                mine = clock.assignee_userid == userid
                return _clock_dto(clock), "already_yours" if mine else "taken"
            clock.state = rules.ACKNOWLEDGED
            clock.acknowledged_at = now
            clock.acknowledged_by = userid
            clock.assignee_userid = userid
            self._cancel_future_steps(s, case_id, ("ack",), now, f"acknowledged by {userid}")
            self._touch_pages(s, clock, now)
            if notice:
                self._add_notice(s, clock, GUEST_ACK, GUEST_ACK, now)
            s.flush()
            return _clock_dto(clock), "acknowledged"

    def take_over(self, case_id: int, userid: str, now: dt.datetime) -> tuple[ClockDTO, str]:
        """接管: acknowledges if nobody did, and records the advisor as talking to the guest.
        Outcomes: 'taken_over', 'already_yours', 'taken' (someone else talks to the guest), 'closed'."""
        with self._session() as s:
            clock = self._locked_clock(s, case_id)
            if clock.state not in rules.OPEN_STATES:
                return _clock_dto(clock), "closed"
            if clock.takeover_userid and clock.handed_back_at is None:
                mine = clock.takeover_userid == userid
                return _clock_dto(clock), "already_yours" if mine else "taken"
            if clock.state == rules.RUNNING:
                clock.state = rules.ACKNOWLEDGED
                clock.acknowledged_at = now
                clock.acknowledged_by = userid
                self._cancel_future_steps(s, case_id, ("ack",), now, f"taken over by {userid}")
                self._touch_pages(s, clock, now)
            clock.assignee_userid = userid
            clock.takeover_userid = userid
            clock.takeover_at = now
            clock.handed_back_at = None
            # A takeover after a hand-back needs its own notice row (unique per subject+step).
            self._add_notice(
                s, clock, f"{GUEST_TAKEOVER}_{int(now.timestamp())}"[:32], GUEST_TAKEOVER, now
            )
            s.flush()
            return _clock_dto(clock), "taken_over"

    def reassign(self, case_id: int, userid: str, now: dt.datetime) -> tuple[ClockDTO, str]:
        """Give an open case to `userid`: the paged advisor of a case nobody acknowledged, else
        its assignee. Outcomes: 'reassigned', 'same' (already theirs), 'closed'."""
        with self._session() as s:
            clock = self._locked_clock(s, case_id)
            if clock.state not in rules.OPEN_STATES:
                return _clock_dto(clock), "closed"
            if clock.state == rules.RUNNING:
                if clock.paged_userid == userid:
                    return _clock_dto(clock), "same"
                clock.paged_userid = userid
            else:
                if clock.assignee_userid == userid:
                    return _clock_dto(clock), "same"
                clock.assignee_userid = userid
            clock.updated_at = now
            s.flush()
            return _clock_dto(clock), "reassigned"

    def hand_back(
        self, case_id: int, userid: str, now: dt.datetime, *, notice: bool = True
    ) -> tuple[ClockDTO, str]:
        """交还: the bot answers the guest again. Outcomes: 'handed_back', 'not_taken_over'."""
        with self._session() as s:
            clock = self._locked_clock(s, case_id)
            if not clock.takeover_userid or clock.handed_back_at is not None:
                return _clock_dto(clock), "not_taken_over"
            clock.handed_back_at = now
            if notice:
                self._add_notice(
                    s, clock, f"{GUEST_HANDBACK}_{int(now.timestamp())}"[:32], GUEST_HANDBACK, now
                )
            s.flush()
            return _clock_dto(clock), "handed_back"

    def resolve(
        self, case_id: int, userid: str, text: str, now: dt.datetime, *, notice: bool = True
    ) -> tuple[ClockDTO, str]:
        """解决. Outcomes: 'resolved', 'closed' (already resolved or cancelled)."""
        with self._session() as s:
            clock = self._locked_clock(s, case_id)
            if clock.state not in rules.OPEN_STATES:
                return _clock_dto(clock), "closed"
            if clock.acknowledged_at is None:  # resolving implies it was picked up
                clock.acknowledged_at = now
                clock.acknowledged_by = userid
                self._touch_pages(s, clock, now)
            clock.assignee_userid = clock.assignee_userid or userid
            clock.state = rules.RESOLVED
            clock.resolved_at = now
            clock.resolved_by = userid
            clock.resolution = text
            if clock.takeover_userid and clock.handed_back_at is None:
                clock.handed_back_at = now
            self._cancel_future_steps(
                s, case_id, ("ack", "resolve", "none"), now, f"resolved by {userid}"
            )
            s.add(SlaNote(clock_id=clock.id, author=userid, kind="resolution", text=text))
            if notice:
                self._add_notice(s, clock, GUEST_RESOLVED, GUEST_RESOLVED, now)
            s.flush()
            return _clock_dto(clock), "resolved"

    def cancel(self, case_id: int, why: str, now: dt.datetime) -> ClockDTO:
        """The subject went away (e.g. the guest cancelled the order): no more steps, and the
        advisor who had it (if anyone was paged) is told once."""
        with self._session() as s:
            clock = self._locked_clock(s, case_id)
            self._cancel(s, clock, why, now)
            s.flush()
            return _clock_dto(clock)

    def _cancel(self, s, clock: SlaClock, why: str, now: dt.datetime) -> bool:
        if clock.state not in rules.OPEN_STATES:
            return False
        clock.state = rules.CANCELLED
        # every step not yet fired is settled now (due or not: nothing more about this case)
        s.execute(
            update(SlaStep)
            .where(
                SlaStep.clock_id == clock.id,
                SlaStep.status == rules.PENDING,
            )
            .values(status=rules.SKIPPED, error=why)
            .execution_options(synchronize_session=False)
        )
        s.add(SlaNote(clock_id=clock.id, author="system", kind="cancelled", text=why[:2000]))
        if clock.takeover_userid or clock.assignee_userid or clock.paged_userid:
            self._add_notice(s, clock, ADVISOR_CANCELLED, ADVISOR_CANCELLED, now)
        return True

    def cancel_gone_subjects(self, now: dt.datetime, limit: int = 200) -> list[ClockDTO]:
        """Cancel the open clocks whose subject went away in the CRM (an order the guest
        cancelled, by whatever path: the bot, a console, an import). Returns those cancelled."""
        cancelled = []
        for subject_type, statuses in GONE_SUBJECT_STATUS.items():
            with self._session() as s:
                open_ids = set(
                    s.execute(
                        select(SlaClock.subject_id).where(
                            SlaClock.subject_type == subject_type,
                            SlaClock.state.in_(list(rules.OPEN_STATES)),
                        )
                    ).scalars()
                )
            gone = self.records.subjects_in_status(subject_type, open_ids, statuses)
            if not gone:
                continue
            with self._session() as s:
                stmt = (
                    select(SlaClock)
                    .where(
                        SlaClock.subject_type == subject_type,
                        SlaClock.subject_id.in_(list(gone)),
                        SlaClock.state.in_(list(rules.OPEN_STATES)),
                    )
                    .order_by(SlaClock.id)
                    .limit(limit)
                )
                if self.is_postgres:
                    stmt = stmt.with_for_update(skip_locked=True)
                for clock in s.execute(stmt).scalars():
                    if self._cancel(s, clock, gone_reason(subject_type), now):
                        cancelled.append(clock)
                s.flush()
                cancelled = [c if isinstance(c, ClockDTO) else _clock_dto(c) for c in cancelled]
        return cancelled

    def add_note(self, case_id: int, author: str, kind: str, text: str) -> NoteDTO:
        with self._session() as s:
            if s.get(SlaClock, case_id) is None:
                raise ClockNotFound(case_id)
            row = SlaNote(clock_id=case_id, author=author, kind=kind, text=text)
            s.add(row)
            s.flush()
            return _note_dto(row)

    def notes(self, case_id: int) -> list[NoteDTO]:
        with self._session() as s:
            return [
                _note_dto(r)
                for r in s.execute(
                    select(SlaNote).where(SlaNote.clock_id == case_id).order_by(SlaNote.id)
                ).scalars()
            ]

    def record_rating(self, case_id: int, rating: int, now: dt.datetime) -> tuple[ClockDTO, bool]:
        """Store the guest's 1-5 rating once; (clock, stored)."""
        if not 1 <= int(rating) <= 5:
            raise ValueError(f"a rating is 1 to 5, got {rating}")
        with self._session() as s:
            clock = self._locked_clock(s, case_id)
            if clock.rating is not None:
                return _clock_dto(clock), False
            clock.rating = int(rating)
            clock.rated_at = now
            s.flush()
            return _clock_dto(clock), True

    def awaiting_rating(
        self, sender_id: str, now: dt.datetime, within: dt.timedelta = dt.timedelta(days=3)
    ) -> Optional[ClockDTO]:
        """The guest's most recently resolved case whose rating request went out and is unanswered."""
        asked = or_(SlaStep.step == GUEST_RESOLVED, SlaStep.step.like(f"{GUEST_HANDBACK}%"))
        stmt = (
            select(SlaClock)
            .join(
                SlaStep, and_(SlaStep.clock_id == SlaClock.id, asked, SlaStep.status == rules.SENT)
            )
            .where(
                SlaClock.sender_id == sender_id,
                SlaClock.state == rules.RESOLVED,
                SlaClock.rating.is_(None),
                SlaClock.resolved_at >= now - within,
            )
            .order_by(SlaClock.resolved_at.desc())
            .limit(1)
        )
        with self._session() as s:
            row = s.execute(stmt).scalar()
            return _clock_dto(row) if row else None

    def active_takeover(self, sender_id: str) -> Optional[ClockDTO]:
        """The case whose advisor is talking to this guest now (bot paused), if any."""
        stmt = (
            select(SlaClock)
            .where(
                SlaClock.sender_id == sender_id,
                SlaClock.takeover_userid.isnot(None),
                SlaClock.handed_back_at.is_(None),
            )
            .order_by(SlaClock.takeover_at.desc())
            .limit(1)
        )
        with self._session() as s:
            row = s.execute(stmt).scalar()
            return _clock_dto(row) if row else None

    # ---- steps ----------------------------------------------------------------------------
    def steps(
        self, case_id: int | None = None, *, statuses: Iterable[str] | None = None
    ) -> list[StepDTO]:
        stmt = select(SlaStep).order_by(SlaStep.due_at, SlaStep.id)
        if case_id is not None:
            stmt = stmt.where(SlaStep.clock_id == case_id)
        if statuses is not None:
            stmt = stmt.where(SlaStep.status.in_(list(statuses)))
        with self._session() as s:
            return [_step_dto(r) for r in s.execute(stmt).scalars()]

    def next_due_at(self) -> Optional[dt.datetime]:
        with self._session() as s:
            value = s.execute(
                select(func.min(SlaStep.due_at)).where(SlaStep.status == rules.PENDING)
            ).scalar()
            return _utc(value)

    def claim_due(
        self, now: dt.datetime, worker_id: str, *, lease: dt.timedelta, limit: int = 50
    ) -> list[tuple[int, int]]:
        """Claim up to `limit` due steps for `worker_id`; returns (step id, case id) pairs,
        oldest due first.

        PostgreSQL: one statement, `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)
        RETURNING`, so concurrent workers take disjoint batches without waiting on each other.
        SQLite: select, then a compare-and-set UPDATE per step (pending → firing)."""
        due = (
            select(SlaStep.id)
            .where(
                SlaStep.status == rules.PENDING,
                SlaStep.due_at <= now,
                or_(SlaStep.lease_until.is_(None), SlaStep.lease_until <= now),
            )
            .order_by(SlaStep.due_at, SlaStep.id)
            .limit(limit)
        )
        claim = dict(
            status=rules.FIRING,
            claimed_by=worker_id,
            lease_until=now + lease,
            attempts=SlaStep.attempts + 1,
        )
        with self._session() as s:
            if self.is_postgres:
                locked = due.with_for_update(skip_locked=True).scalar_subquery()
                rows = s.execute(
                    update(SlaStep)
                    .where(SlaStep.id.in_(locked), SlaStep.status == rules.PENDING)
                    .values(**claim)
                    .returning(SlaStep.id, SlaStep.clock_id, SlaStep.due_at)
                    .execution_options(synchronize_session=False)
                ).all()
                return [(r.id, r.clock_id) for r in sorted(rows, key=lambda r: (r.due_at, r.id))]
            candidates = s.execute(due.add_columns(SlaStep.clock_id)).all()
            claimed = []
            for step_id, clock_id in candidates:
                result = s.execute(
                    update(SlaStep)
                    .where(SlaStep.id == step_id, SlaStep.status == rules.PENDING)
                    .values(**claim)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:
                    claimed.append((step_id, clock_id))
            return claimed

    def claim_step(
        self, step_id: int, worker_id: str, now: dt.datetime, *, lease: dt.timedelta
    ) -> bool:
        """Claim one given step (e.g. a notice an advisor's action just created), if still pending."""
        with self._session() as s:
            result = s.execute(
                update(SlaStep)
                .where(
                    SlaStep.id == step_id, SlaStep.status == rules.PENDING, SlaStep.due_at <= now
                )
                .values(
                    status=rules.FIRING,
                    claimed_by=worker_id,
                    lease_until=now + lease,
                    attempts=SlaStep.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    def release_expired(self, now: dt.datetime) -> int:
        """Steps left `firing` by a worker that died: back to pending, to be fired again."""
        with self._session() as s:
            result = s.execute(
                update(SlaStep)
                .where(SlaStep.status == rules.FIRING, SlaStep.lease_until < now)
                .values(
                    status=rules.PENDING,
                    lease_until=None,
                    error="lease expired: the worker firing it stopped; firing again",
                )
                .execution_options(synchronize_session=False)
            )
            return result.rowcount or 0

    def step_with_clock(self, step_id: int) -> tuple[StepDTO, ClockDTO]:
        return self.steps_with_clocks([step_id])[0]

    def steps_with_clocks(self, step_ids: Sequence[int]) -> list[tuple[StepDTO, ClockDTO]]:
        """Steps and their clocks in one query, in the order of `step_ids`."""
        if not step_ids:
            return []
        with self._session() as s:
            rows = s.execute(
                select(SlaStep, SlaClock)
                .join(SlaClock, SlaClock.id == SlaStep.clock_id)
                .where(SlaStep.id.in_(list(step_ids)))
            ).all()
            found = {step.id: (_step_dto(step), _clock_dto(clock)) for step, clock in rows}
        return [found[i] for i in step_ids if i in found]

    def mark_delivered(
        self,
        step_id: int,
        worker_id: str,
        delivered: Sequence[str],
        recipients: Sequence[str],
        *,
        paged: Optional[str] = None,
        case_id: Optional[int] = None,
    ) -> bool:
        """Record what a step this worker holds has delivered so far (the whole lists: only the
        claim holder writes them), and for a page to a newly picked advisor make them the
        case's paged advisor. False if the claim was lost."""
        with self._session() as s:
            result = s.execute(
                update(SlaStep)
                .where(
                    SlaStep.id == step_id,
                    SlaStep.status == rules.FIRING,
                    SlaStep.claimed_by == worker_id,
                )
                .values(delivered=list(delivered), recipients=list(recipients))
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                return False
            if paged and case_id is not None:
                s.execute(
                    update(SlaClock)
                    .where(SlaClock.id == case_id)
                    .values(paged_userid=paged, updated_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
            return True

    def finish_step(
        self,
        step_id: int,
        worker_id: str,
        status: str,
        *,
        fired_at: dt.datetime,
        late: Optional[bool] = None,
        error: Optional[str] = None,
        page_recipient: Optional[str] = None,
        step: Optional[StepDTO] = None,
        clock: Optional[ClockDTO] = None,
        delivered: Optional[Sequence[str]] = None,
        recipients: Optional[Sequence[str]] = None,
        paged: Optional[str] = None,
    ) -> bool:
        """firing → sent / skipped / failed, only by the worker holding it, in one transaction
        with the complete `delivered` / `recipients` lists and the paged advisor. A sent page is
        mirrored into the CRM's `pages` table (what `concierge guest show` lists)."""
        with self._session() as s:
            values: dict = dict(
                status=status,
                fired_at=fired_at if status == rules.SENT else None,
                late=late,
                error=error,
                lease_until=None,
            )
            if delivered is not None:
                values["delivered"] = list(delivered)
                values["recipients"] = list(recipients or ())
            result = s.execute(
                update(SlaStep)
                .where(
                    SlaStep.id == step_id,
                    SlaStep.status == rules.FIRING,
                    SlaStep.claimed_by == worker_id,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                return False
            if paged:
                case_id = step.clock_id if step is not None else s.get(SlaStep, step_id).clock_id
                s.execute(
                    update(SlaClock)
                    .where(SlaClock.id == case_id)
                    .values(paged_userid=paged, updated_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
            if status == rules.SENT and page_recipient is not None:
                if step is None or clock is None:
                    step = _step_dto(s.get(SlaStep, step_id))
                    clock = _clock_dto(s.get(SlaClock, step.clock_id))
                s.add(
                    Page(
                        subject_type=step.subject_type,
                        subject_id=step.subject_id,
                        step=step.step,
                        recipient=page_recipient[:64],
                        due_at=step.due_at,
                        sent_at=fired_at,
                        status="late" if late else "sent",
                        attempt=step.attempts,
                        acknowledged_at=clock.acknowledged_at,
                    )
                )
            return True

    def retry_later(
        self, step_id: int, worker_id: str, at: dt.datetime, error: str, *, max_attempts: int
    ) -> str:
        """A send failed: pending again after `at`, or failed for good after max_attempts."""
        with self._session() as s:
            row = s.get(SlaStep, step_id)
            if row is None or row.status != rules.FIRING or row.claimed_by != worker_id:
                return "lost"
            if row.attempts >= max_attempts:
                row.status = rules.FAILED
                row.error = error
                row.lease_until = None
                return rules.FAILED
            row.status = rules.PENDING
            row.lease_until = at
            row.error = error
            return rules.PENDING

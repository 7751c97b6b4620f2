"""The paging worker: starts clocks for new tickets/orders/handoffs and fires every due step once.

    concierge worker              # run it (make run starts one; start more for more throughput)

One tick:
1. steps left `firing` by a worker that died (lease run out) go back to pending;
2. new subjects with an SLA class get their clock and steps (deadlines from the policy, counted
   from the subject's creation time);
3. due steps are claimed in batches (`FOR UPDATE SKIP LOCKED` + compare-and-set, see
   `bot.paging.store`) and fired: recipients are resolved against the roster *now*, each one is
   sent and recorded as delivered, and the step ends `sent` (with `late` when it went out more
   than the policy's grace after it fell due), `skipped` (the clock got there first) or, after
   a failed send, pending again with back-off (`failed` after max_attempts).

Between ticks the loop sleeps until the next step falls due, at most `poll_s` (new subjects are
found by that poll), and wakes at once on `wake()` or, on PostgreSQL, on a NOTIFY from the
insert triggers of migration 0003 (so a new complaint is paged within a fraction of a second).
Time comes from an injectable `clock` so tests can move it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

from bot.core.time import utcnow
from bot.complaints.classifier import remedy_for
from bot.paging import clocks as rules
from bot.paging import roster
from bot.paging.clocks import plan_clock
from bot.paging.context import GuestContext
from bot.paging.pager import CardFacts, Messenger, group_text, guest_text, page_card
from bot.paging.policy import Policy
from bot.paging.store import (
    ADVISOR_CANCELLED,
    GUEST_ACK,
    GUEST_HANDBACK,
    GUEST_RESOLVED,
    GUEST_TAKEOVER,
    ClockDTO,
    PagingStore,
    StepDTO,
)

log = logging.getLogger(__name__)

ADVISOR_TARGETS = ("on_duty", "paged", "next_on_duty")
GUEST_UPDATE = "guest_update"  # a policy target: "still on it" to the guest, e.g. every hour
NOTICE_TARGETS = (GUEST_ACK, GUEST_TAKEOVER, GUEST_HANDBACK, GUEST_RESOLVED, GUEST_UPDATE)
ROLE_WORDS = {
    "supervisor": "主管",
    "duty_manager": "值班经理",
    "next_on_duty": "其他值班顾问",
    "emergency_group": "应急小组",
    "on_duty": "值班顾问",
    "paged": "值班顾问",
}
NOTIFY_CHANNEL = "concierge_paging"


@dataclass
class TickReport:
    released: int = 0
    created: int = 0
    fired: int = 0
    late: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0

    def __iadd__(self, other: "TickReport") -> "TickReport":
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


@dataclass
class _Delivery:
    key: str  # e.g. "supervisor:supervisor_wang" (recorded in the step's `delivered`)
    recipient: str  # e.g. "app:supervisor_wang"
    send: Callable[[], Awaitable[None]]
    is_page: bool  # goes to staff (mirrored into the CRM's pages table)
    paged: Optional[str] = None  # a newly picked advisor: becomes the case's paged advisor


class PagingWorker:
    def __init__(
        self,
        store: PagingStore,
        policy: Policy,
        messenger: Messenger,
        *,
        context: Optional[GuestContext] = None,
        on_nobody_free: Optional[Callable[[ClockDTO], Awaitable[None]]] = None,
        clock: Callable[[], dt.datetime] = utcnow,
        worker_id: Optional[str] = None,
        poll_s: float = 0.5,
        lease: dt.timedelta = dt.timedelta(seconds=60),
        batch: int = 50,
        concurrency: int = 16,
        max_attempts: int = 5,
        retry_after: dt.timedelta = dt.timedelta(seconds=15),
        discovery_window: dt.timedelta = dt.timedelta(days=1),
        links=None,
    ):
        self.store = store
        self.links = links  # bot.paging.links.CaseLinks (None: built from the settings per link)
        self.policy = policy
        self.messenger = messenger
        self.context = context or GuestContext()
        self.on_nobody_free = on_nobody_free
        self.clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.poll_s = poll_s
        self.lease = lease
        self.batch = batch
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.retry_after = retry_after
        self.discovery_window = discovery_window
        self._ignored: set = set()
        self._load: Optional[dict] = None  # open cases per advisor, kept during a batch
        self._wake: Optional[asyncio.Event] = None
        self._stop: Optional[asyncio.Event] = None

    # ---- one pass -------------------------------------------------------------------------
    async def tick(self) -> TickReport:
        report = TickReport()
        now = self.clock()
        report.released = await asyncio.to_thread(self.store.release_expired, now)
        # Before anything fires: a case whose order the guest cancelled pages nobody again.
        for clock in await asyncio.to_thread(self.store.cancel_gone_subjects, now):
            log.info(
                "case #%s: %s %s went away, clock cancelled",
                clock.id,
                clock.subject_type,
                clock.subject_id,
            )
        for _ in range(100):  # bounded: the loop gets its turn again soon
            # New cases are looked for before every batch, so a backlog of due steps does not
            # hold back the first page of a complaint that just came in.
            report.created += await self.discover(now)
            now = self.clock()
            claimed = await asyncio.to_thread(
                self.store.claim_due, now, self.worker_id, lease=self.lease, limit=self.batch
            )
            if not claimed:
                break
            # Steps of one case fire one after the other, in due order (the page before the
            # re-page); different cases in parallel.
            by_case: dict[int, list[int]] = {}
            for step_id, clock_id in claimed:
                by_case.setdefault(clock_id, []).append(step_id)
            loaded = {
                step.id: (step, clock)
                for step, clock in await asyncio.to_thread(
                    self.store.steps_with_clocks, [c[0] for c in claimed]
                )
            }
            self._load = await asyncio.to_thread(self.store.load)
            semaphore = asyncio.Semaphore(self.concurrency)

            async def fire_case(step_ids: list[int]) -> TickReport:
                case_report = TickReport()
                async with semaphore:
                    for n, step_id in enumerate(step_ids):
                        # later steps of the case see what the earlier ones changed
                        pair = loaded.get(step_id) if n == 0 else None
                        case_report += await self.fire(step_id, pair)
                return case_report

            for result in await asyncio.gather(*(fire_case(ids) for ids in by_case.values())):
                report += result
            self._load = None
        return report

    async def discover(self, now: dt.datetime) -> int:
        """Clocks for new subjects; returns how many were created by this worker."""
        subjects = await asyncio.to_thread(
            self.store.unclocked_subjects, now - self.discovery_window, now
        )
        plans = []
        for info in subjects:
            key = (info.subject_type, info.subject_id)
            if key in self._ignored:
                continue
            if not self.policy.has_class(info.sla_class):
                self._ignored.add(key)
                log.error(
                    "%s %s has SLA class %r, which the policy %s does not define: no clock",
                    info.subject_type,
                    info.subject_id,
                    info.sla_class,
                    self.policy.source,
                )
                continue
            try:
                plans.append(
                    (
                        info,
                        plan_clock(self.policy, info.sla_class, info.created_at, info.property_id),
                    )
                )
            except (KeyError, ValueError) as exc:
                self._ignored.add(key)
                log.error("cannot start the clock of %s %s: %s", *key, exc)
        created = await asyncio.to_thread(self.store.create_clocks, plans)
        for clock in created:
            log.info(
                "case #%s: %s %s (%s) ack by %s",
                clock.id,
                clock.subject_type,
                clock.subject_id,
                clock.sla_class,
                clock.ack_due_at.isoformat(),
            )
        return len(created)

    # ---- one step -------------------------------------------------------------------------
    async def fire(self, step_id: int, pair: Optional[tuple] = None) -> TickReport:
        """Fire one step this worker has claimed (`pair`: its step and clock, if loaded)."""
        report = TickReport()
        step, clock = pair or await asyncio.to_thread(self.store.step_with_clock, step_id)
        if step.status != rules.FIRING or step.claimed_by != self.worker_id:
            return report
        now = self.clock()
        decision = rules.step_decision(
            step.until,
            clock.state,
            due_at=step.due_at,
            acknowledged_at=clock.acknowledged_at,
            resolved_at=clock.resolved_at,
        )
        if step.step == ADVISOR_CANCELLED:  # the one step that exists because it was cancelled
            decision = rules.FIRE
        if decision == rules.SKIPPED:
            await asyncio.to_thread(
                self.store.finish_step,
                step.id,
                self.worker_id,
                rules.SKIPPED,
                fired_at=now,
                error=f"clock {clock.state} before it fell due",
            )
            report.skipped += 1
            return report
        try:
            deliveries = await self._deliveries(step, clock, now)
        except Exception as exc:  # e.g. the class left the policy: record, do not loop forever
            log.exception("case #%s step %s cannot be prepared", clock.id, step.step)
            return await self._failed(step, now, f"cannot prepare: {exc}", report)

        errors = []
        delivered, recipients = list(step.delivered), list(step.recipients)
        last_paged = None
        for i, delivery in enumerate(deliveries):
            try:
                await delivery.send()
            except Exception as exc:
                errors.append(f"{delivery.recipient}: {exc}")
                log.warning(
                    "case #%s step %s to %s failed: %s",
                    clock.id,
                    step.step,
                    delivery.recipient,
                    exc,
                )
                if delivery.paged:  # remember whom we tried: the retry picks someone else
                    await asyncio.to_thread(self.store.set_paged, clock.id, delivery.paged)
                continue
            delivered.append(delivery.key)
            recipients.append(delivery.recipient)
            if i == len(deliveries) - 1 and not errors:
                last_paged = delivery.paged  # recorded with the step's end, in one transaction
                continue
            ok = await asyncio.to_thread(
                self.store.mark_delivered,
                step.id,
                self.worker_id,
                delivered,
                recipients,
                paged=delivery.paged,
                case_id=clock.id,
            )
            if not ok:  # our lease ran out and someone else took the step: stop here
                log.warning("case #%s step %s: claim lost mid-send", clock.id, step.step)
                return report
        if errors:
            if delivered != list(step.delivered):
                await asyncio.to_thread(
                    self.store.mark_delivered, step.id, self.worker_id, delivered, recipients
                )
            return await self._failed(step, now, "; ".join(errors), report)

        fired_at = self.clock()
        late = rules.is_late(step.due_at, fired_at, self.policy.grace)
        pages = [r for r in dict.fromkeys(recipients) if not r.startswith("guest:")]
        done = await asyncio.to_thread(
            self.store.finish_step,
            step.id,
            self.worker_id,
            rules.SENT,
            fired_at=fired_at,
            late=late,
            page_recipient=",".join(pages) if pages else None,
            step=step,
            clock=clock,
            delivered=delivered,
            recipients=recipients,
            paged=last_paged,
        )
        if done:
            report.fired += 1
            report.late += int(late)
            if late:
                log.warning(
                    "case #%s step %s fired %.1fs late",
                    clock.id,
                    step.step,
                    (fired_at - step.due_at).total_seconds(),
                )
        return report

    async def _failed(
        self, step: StepDTO, now: dt.datetime, error: str, report: TickReport
    ) -> TickReport:
        backoff = self.retry_after * (2 ** max(0, step.attempts - 1))
        outcome = await asyncio.to_thread(
            self.store.retry_later,
            step.id,
            self.worker_id,
            now + backoff,
            error[:2000],
            max_attempts=self.max_attempts,
        )
        if outcome == rules.FAILED:
            report.failed += 1
            log.error(
                "step %s (%s) failed for good after %s attempts: %s",
                step.id,
                step.step,
                step.attempts,
                error,
            )
        elif outcome == rules.PENDING:
            report.retried += 1
        return report

    def _name(self, userid: Optional[str]) -> Optional[str]:
        if not userid:
            return None
        person = self.policy.people().get(userid)
        return person.name if person else userid

    async def _deliveries(
        self, step: StepDTO, clock: ClockDTO, now: dt.datetime
    ) -> list[_Delivery]:
        policy = self.policy
        prop = policy.property(clock.property_id)
        cls = policy.sla_class(clock.sla_class, prop.id)
        delivered = set(step.delivered)
        late_by = now - step.due_at if rules.is_late(step.due_at, now, policy.grace) else None
        acknowledged = clock.acknowledged_at is not None
        deliveries: list[_Delivery] = []
        needs_card = any(
            t not in NOTICE_TARGETS and t not in ("guest", ADVISOR_CANCELLED) for t in step.notify
        )
        guest = await self.context.card(clock.sender_id) if needs_card else None
        holder = clock.holder
        case = await self._case_facts(clock) if needs_card else {}

        def facts(
            card_step: str, escalation: bool, holder_name: Optional[str], nobody: bool = False
        ) -> CardFacts:
            return CardFacts(
                case_id=clock.id,
                label=cls.label,
                step=card_step,
                summary=case.get("summary") or clock.summary or "",
                ack_due_at=clock.ack_due_at,
                resolve_due_at=clock.resolve_due_at,
                acknowledged=acknowledged,
                holder_name=holder_name,
                escalation=escalation,
                late_by=late_by,
                nobody_on_duty=nobody,
                nature=case.get("nature"),
                remedy=case.get("remedy"),
                offered=case.get("offered"),
                past=case.get("past", ()),
                dedicated=self._name(case.get("dedicated")),
                media=case.get("media", ""),
                step_id=step.id,
            )

        def card_to(
            target: str, userid: str, card_facts: CardFacts, paged: Optional[str] = None
        ) -> None:
            key = f"{target}:{userid}"
            if key in delivered:
                return
            card = page_card(policy, card_facts, guest, now, viewer=userid, links=self.links)
            dedupe = f"sla:{step.id}:{key}"

            async def send() -> None:
                # What the card shows the advisor is a staff read of the guest: audited.
                await self.context.audit_sent(userid, clock, card_facts.step)
                await self.messenger.app_textcard(
                    userid,
                    card["title"],
                    card["description"],
                    card["url"],
                    card["btntxt"],
                    dedupe_key=dedupe,
                )

            deliveries.append(_Delivery(key, f"app:{userid}", send, True, paged))

        async def current_load() -> dict:
            if self._load is None:
                return await asyncio.to_thread(self.store.load, clock.id)
            load = dict(self._load)
            if clock.paged_userid and not clock.assignee_userid and not clock.takeover_userid:
                load[clock.paged_userid] = max(0, load.get(clock.paged_userid, 0) - 1)
            return load

        def count_page(userid: str) -> None:
            if self._load is not None:
                self._load[userid] = self._load.get(userid, 0) + 1

        async def nobody_free(target: str) -> None:
            """Nobody on duty: the supervisors get it (the duty manager if none); a 微信客服
            guest waiting for a person is put in the queue (state 2)."""
            fallback = list(prop.supervisors) or ([prop.duty_manager] if prop.duty_manager else [])
            for person in fallback:
                card_to(target, person.userid, facts(step.step, True, None, nobody=True))
            if clock.subject_type == "handoff" and self.on_nobody_free is not None:
                try:
                    await self.on_nobody_free(clock)
                except Exception as exc:
                    log.warning("case #%s: could not queue the guest: %s", clock.id, exc)

        for target in step.notify:
            if any(k.startswith(f"{target}:") for k in delivered) and target in ADVISOR_TARGETS:
                continue
            if target == "on_duty":
                load = await current_load()
                # A page that could not reach the paged advisor tries someone else on duty.
                failed_before = (
                    {clock.paged_userid} if step.attempts > 1 and clock.paged_userid else set()
                )
                advisor = (
                    self._dedicated_on_duty(prop, case.get("dedicated"), now, failed_before)
                    or roster.pick_on_duty(policy, prop, now, load=load, exclude=failed_before)
                    or roster.pick_on_duty(policy, prop, now, load=load)
                )
                if advisor is None:
                    await nobody_free(target)
                    continue
                holder = advisor.userid
                count_page(advisor.userid)
                card_to(
                    target,
                    advisor.userid,
                    facts(step.step, False, advisor.name),
                    paged=advisor.userid,
                )
            elif target == "paged":
                userid, paged = holder, None
                if userid is None:
                    advisor = roster.pick_on_duty(policy, prop, now, load=await current_load())
                    if advisor is None:
                        await nobody_free(target)
                        continue
                    userid = paged = advisor.userid
                    count_page(userid)
                card_to(target, userid, facts(step.step, False, self._name(userid)), paged=paged)
            elif target == "next_on_duty":
                advisor = roster.next_on_duty(policy, prop, now, holder)
                if advisor is None:
                    await nobody_free(target)
                    continue
                card_to(
                    target,
                    advisor.userid,
                    facts("reroute", False, advisor.name),
                    paged=None if acknowledged else advisor.userid,
                )
            elif target == "supervisor":
                for person in prop.supervisors:
                    card_to(target, person.userid, facts(step.step, True, self._name(holder)))
            elif target == "duty_manager":
                if prop.duty_manager:
                    card_to(
                        target, prop.duty_manager.userid, facts(step.step, True, self._name(holder))
                    )
            elif target == "emergency_group":
                group = prop.emergency_group
                key = f"emergency_group:{group.name}" if group else ""
                if group and key not in delivered:
                    text = group_text(
                        policy,
                        facts(step.step, True, self._name(holder)),
                        guest,
                        now,
                        group=group.name,
                        links=self.links,
                    )
                    dedupe = f"sla:{step.id}:{key}"
                    deliveries.append(
                        _Delivery(
                            key,
                            f"group:{group.name}",
                            lambda g=group, t=text, d=dedupe: self.messenger.group_post(
                                g.webhook, t, g.mention, dedupe_key=d
                            ),
                            True,
                        )
                    )
            elif target == ADVISOR_CANCELLED:
                userid = clock.holder
                key = f"{target}:{userid}"
                if userid is None or key in delivered:
                    continue
                text = (
                    f"#{clock.id} {cls.label}已取消：{clock.summary or ''}。"
                    "客人已自行取消，无需再处理；如已联系供应商，请告知对方取消。"
                )
                dedupe = f"sla:{step.id}:{key}"
                deliveries.append(
                    _Delivery(
                        key,
                        f"app:{userid}",
                        lambda u=userid, t=text, d=dedupe: self.messenger.app_text(
                            u, t, dedupe_key=d
                        ),
                        False,
                    )
                )
            elif target == "guest" and clock.state == rules.RESOLVED:
                continue  # a late escalation of a case since resolved: the guest has been told
            elif target == "guest" or target in NOTICE_TARGETS:
                key = f"{target}:{clock.sender_id}"
                if key in delivered:
                    continue
                text = self._guest_notice(target, step, clock, cls, now)
                dedupe = f"sla:{step.id}:{key}"
                deliveries.append(
                    _Delivery(
                        key,
                        f"guest:{clock.sender_id}",
                        lambda t=text, d=dedupe: self.messenger.guest_text(
                            clock.sender_id, t, dedupe_key=d
                        ),
                        False,
                    )
                )
            else:
                raise ValueError(f"unknown target {target!r}")
        return deliveries

    async def _case_facts(self, clock: ClockDTO) -> dict:
        """What a card says beyond the clock: the subject's current summary (details the guest
        added after the first page), a complaint's nature and the policy's remedy, what was
        offered, and the guest's earlier complaints with the advisor who handled the last one.
        Best effort: a page never fails for want of these."""
        try:
            return await asyncio.to_thread(self._read_case_facts, clock)
        except Exception as exc:
            log.warning("case #%s: card details unavailable: %s", clock.id, exc)
            return {}

    def _read_case_facts(self, clock: ClockDTO) -> dict:
        facts: dict = {}
        info = self.store.subject(clock.subject_type, clock.subject_id, clock.created_at)
        if info is not None:
            facts["summary"] = info.summary
            if info.nature:
                remedy = remedy_for(info.nature)
                facts["nature"] = remedy.label if remedy else info.nature
                facts["remedy"] = remedy.remedy if remedy else None
                offered = [n.text for n in self.store.notes(clock.id) if n.kind == "compensation"]
                facts["offered"] = offered[-1] if offered else None
        if clock.subject_type == "ticket":
            kinds = [kind for _, kind in self.store.ticket_media(clock.subject_id)]
            words = [
                f"{word} {kinds.count(kind)} {unit}"
                for kind, word, unit in (("image", "照片", "张"), ("voice", "语音", "条"))
                if kind in kinds
            ]
            facts["media"] = "、".join(words)
        past = self.store.past_complaints(
            clock.guest_id,
            clock.created_at,
            exclude_ticket=clock.subject_id if clock.subject_type == "ticket" else None,
        )
        if past:
            tz = self.policy.tz
            facts["past"] = tuple(
                f"#{p.ticket_id}（{p.created_at.astimezone(tz):%Y-%m-%d}"
                f"{'，已补偿：' + p.compensation if p.compensation else ''}）"
                for p in past[:3]
            )
            facts["dedicated"] = next((p.advisor for p in past if p.advisor), None)
        return facts

    def _dedicated_on_duty(self, prop, userid: Optional[str], now: dt.datetime, exclude: set):
        """The guest's dedicated advisor (who handled their last complaint), if on duty here."""
        if not userid or userid in exclude:
            return None
        advisor = next((a for a in prop.roster if a.userid == userid), None)
        if advisor is not None and roster.is_on_duty(self.policy, advisor, now):
            return advisor
        return None

    def _guest_notice(
        self, target: str, step: StepDTO, clock: ClockDTO, cls, now: dt.datetime
    ) -> str:
        common = dict(label=cls.label, case_id=clock.id, now=now)
        if target == "guest":
            others = [ROLE_WORDS[t] for t in step.notify if t in ROLE_WORDS]
            escalated = "、".join(dict.fromkeys(others)) or "主管"
            kind = "guest_slip_resolve" if step.until == "resolve" else "guest_slip_ack"
            return guest_text(
                kind,
                self.policy,
                escalated_to=escalated,
                acknowledged=clock.acknowledged_at is not None,
                advisor_name=self._name(clock.holder),
                **common,
            )
        if target == GUEST_UPDATE:
            return guest_text(
                GUEST_UPDATE,
                self.policy,
                advisor_name=self._name(clock.holder),
                acknowledged=clock.acknowledged_at is not None,
                **common,
            )
        if target == GUEST_ACK:
            return guest_text(
                target,
                self.policy,
                advisor_name=self._name(clock.assignee_userid),
                resolve_by=clock.resolve_due_at,
                **common,
            )
        if target in (GUEST_TAKEOVER, GUEST_HANDBACK):
            text = guest_text(
                target, self.policy, advisor_name=self._name(clock.takeover_userid), **common
            )
            if (
                target == GUEST_HANDBACK
                and clock.subject_type == "handoff"
                and clock.state == rules.RESOLVED
                and cls.ask_rating
            ):
                text += "请为刚才的人工服务打分：直接回复 1-5 的数字（5 分最满意）。"
            return text
        return guest_text(
            GUEST_RESOLVED,
            self.policy,
            resolution=clock.resolution,
            ask_rating=cls.ask_rating,
            **common,
        )

    # ---- the loop -------------------------------------------------------------------------
    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        self.wake()

    async def run(self, *, listen: bool = True) -> None:
        """Tick until `stop()`; survives a database or WeCom outage (logs, waits, tries again)."""
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        listener = _PgListener(self.store, self.wake) if listen and self.store.is_postgres else None
        if listener:
            listener.start()
        log.info(
            "paging worker %s started (policy %s, poll %.1fs)",
            self.worker_id,
            self.policy.source,
            self.poll_s,
        )
        try:
            while not self._stop.is_set():
                wait = self.poll_s
                try:
                    report = await self.tick()
                    if report.created or report.fired or report.failed or report.released:
                        log.info("tick: %s", report)
                    next_due = await asyncio.to_thread(self.store.next_due_at)
                    if next_due is not None:
                        wait = min(self.poll_s, max(0.0, (next_due - self.clock()).total_seconds()))
                except Exception:
                    log.exception("paging tick failed; trying again in %.1fs", self.poll_s)
                if wait > 0:
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
                self._wake.clear()
        finally:
            if listener:
                listener.close()
            log.info("paging worker %s stopped", self.worker_id)


class _PgListener:
    """LISTEN on the channel the insert triggers of migration 0003 notify: wakes the worker the
    moment a ticket/order/handoff with an SLA class is committed. Best effort: without it the
    poll still finds new subjects."""

    def __init__(self, store: PagingStore, wake: Callable[[], None]):
        self.store = store
        self.wake = wake
        self.conn = None

    def start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            conn = self.store.engine.raw_connection()
            dbapi = conn.dbapi_connection if hasattr(conn, "dbapi_connection") else conn.connection
            dbapi.autocommit = True
            with dbapi.cursor() as cursor:
                cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.conn = conn
            loop.add_reader(dbapi.fileno(), self._on_readable, dbapi)
        except Exception as exc:
            log.info("no LISTEN/NOTIFY wake-ups (%s); polling only", exc)
            self.close()

    def _on_readable(self, dbapi) -> None:
        try:
            dbapi.poll()
            if dbapi.notifies:
                dbapi.notifies.clear()
                self.wake()
        except Exception as exc:
            log.warning("LISTEN connection failed (%s); polling only", exc)
            self.close()

    def close(self) -> None:
        if self.conn is None:
            return
        try:
            dbapi = (
                self.conn.dbapi_connection
                if hasattr(self.conn, "dbapi_connection")
                else self.conn.connection
            )
            asyncio.get_running_loop().remove_reader(dbapi.fileno())
        except Exception:
            pass
        try:
            self.conn.invalidate()  # never hand a LISTENing connection back to the pool
        except Exception:
            pass
        self.conn = None

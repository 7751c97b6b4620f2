"""SLA clock rules: pure functions of the policy and an injected `now` (no database, no clock).

- `plan_clock` turns a new ticket/order/handoff into its deadlines and steps, once, at creation.
  Each step's due time is fixed then and stored; a later policy change does not move it.
- `step_decision` says what a due step does when the worker reaches it: fire, or skip because
  the clock already got where the step's `until` says.
- `lateness` / `is_late`: a step fired more than `grace` after it fell due is late (it still
  fires, once, and says so).
- `outcome`: met / missed / pending for a deadline. Acknowledging exactly at the deadline meets it.
- `guest_promise`: what the guest is told at creation (who acts, by when), in Chinese.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional, Tuple

from bot.paging import roster
from bot.paging.policy import Policy, format_duration

SUBJECT_TYPES = ("ticket", "order", "handoff")

# Clock states. running: nobody acknowledged yet; acknowledged: someone took it;
# resolved: done (for a handoff: handed back); cancelled: the subject went away (order cancelled).
RUNNING, ACKNOWLEDGED, RESOLVED, CANCELLED = "running", "acknowledged", "resolved", "cancelled"
CLOCK_STATES = (RUNNING, ACKNOWLEDGED, RESOLVED, CANCELLED)
OPEN_STATES = (RUNNING, ACKNOWLEDGED)

# Step states. pending → firing (claimed by a worker, lease running) → sent | skipped | failed.
PENDING, FIRING, SENT, SKIPPED, FAILED = "pending", "firing", "sent", "skipped", "failed"
STEP_STATES = (PENDING, FIRING, SENT, SKIPPED, FAILED)
FIRE = "fire"  # step_decision's other answer (besides SKIPPED)

# Whose role the guest hears about at creation, by the first step's targets.
ROLE_WORDS = {
    "on_duty": "值班顾问",
    "paged": "值班顾问",
    "next_on_duty": "值班顾问",
    "supervisor": "主管",
    "duty_manager": "值班经理",
    "emergency_group": "应急小组",
}


@dataclass(frozen=True)
class PlannedStep:
    name: str
    due_at: dt.datetime
    notify: Tuple[str, ...]
    until: str


@dataclass(frozen=True)
class ClockPlan:
    sla_class: str
    property_id: str
    created_at: dt.datetime  # when the subject was created
    started_at: dt.datetime  # when the clock runs from (later outside service hours)
    ack_due_at: dt.datetime
    resolve_due_at: Optional[dt.datetime]
    steps: Tuple[PlannedStep, ...]
    deferred: bool = False  # created outside service hours: started at the next opening


def _aware(moment: dt.datetime, name: str) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {moment!r}; pass a timezone-aware datetime")
    return moment.astimezone(dt.timezone.utc)


def plan_clock(
    policy: Policy, sla_class: str, created_at: dt.datetime, property_id: Optional[str] = None
) -> ClockPlan:
    """Deadlines and steps for a subject of `sla_class` created at `created_at`.

    A class measured in service hours only (`service_hours_only`) starts its clock when service
    hours next open, if it was created outside them. Raises KeyError for an unknown class.
    """
    created = _aware(created_at, "created_at")
    prop = policy.property(property_id)
    cls = policy.sla_class(sla_class, prop.id)
    started = created
    deferred = False
    if cls.service_hours_only:
        opening = roster.next_service_opening(policy, prop, created)
        if opening is None:
            raise ValueError(f"property {prop.id!r} has no service hours ahead of {created}")
        deferred = opening > created
        started = opening.astimezone(dt.timezone.utc)
    steps = tuple(
        PlannedStep(
            name=s.name if k == 0 else f"{s.name}_{k + 1}",
            due_at=started + s.offset(cls) + k * (s.every or dt.timedelta(0)),
            notify=s.notify,
            until=s.until,
        )
        for s in cls.steps
        for k in range(s.times if s.every else 1)
    )
    return ClockPlan(
        sla_class=cls.name,
        property_id=prop.id,
        created_at=created,
        started_at=started,
        ack_due_at=started + cls.ack_within,
        resolve_due_at=started + cls.resolve_within if cls.resolve_within else None,
        steps=tuple(sorted(steps, key=lambda s: (s.due_at, s.name))),
        deferred=deferred,
    )


def step_decision(
    until: str,
    state: str,
    *,
    due_at: Optional[dt.datetime] = None,
    acknowledged_at: Optional[dt.datetime] = None,
    resolved_at: Optional[dt.datetime] = None,
) -> str:
    """FIRE or SKIPPED for a due step whose clock is in `state`.

    A step fires unless the clock got where its `until` says *no later than the step fell due*:
    - `until: ack` steps are settled by an acknowledgement (or resolution) at or before `due_at`
      (acknowledging exactly at the deadline meets it);
    - `until: resolve` steps by a resolution at or before `due_at`;
    - `until: none` (notices to the guest) always fire; a cancelled clock fires nothing.
    A step that fell due *before* a late acknowledgement or resolution still fires, once and
    late: the breach happened, the worker was only slow or down.
    """
    if state not in CLOCK_STATES:
        raise ValueError(f"unknown clock state {state!r}")
    if state == CANCELLED:
        return SKIPPED
    if until == "none":
        return FIRE
    reached = resolved_at if until == "resolve" else (acknowledged_at or resolved_at)
    if reached is None and (state == RESOLVED or (until == "ack" and state == ACKNOWLEDGED)):
        return SKIPPED  # no time recorded: be quiet rather than page about a settled case
    if reached is not None:
        if due_at is None or _aware(reached, "reached") <= _aware(due_at, "due_at"):
            return SKIPPED
    return FIRE


def lateness(due_at: dt.datetime, fired_at: dt.datetime) -> dt.timedelta:
    return _aware(fired_at, "fired_at") - _aware(due_at, "due_at")


def is_late(due_at: dt.datetime, fired_at: dt.datetime, grace: dt.timedelta) -> bool:
    return lateness(due_at, fired_at) > grace


def outcome(due_at: Optional[dt.datetime], done_at: Optional[dt.datetime], now: dt.datetime) -> str:
    """'met' (done at or before the deadline), 'missed' (done after it, or not done and the
    deadline has passed), 'pending' (not done, deadline ahead), 'none' (no deadline)."""
    if due_at is None:
        return "none"
    due = _aware(due_at, "due_at")
    if done_at is not None:
        return "met" if _aware(done_at, "done_at") <= due else "missed"
    return "missed" if _aware(now, "now") > due else "pending"


@dataclass(frozen=True)
class Promise:
    who: str  # 值班顾问 / 应急小组 ...
    ack_by: dt.datetime
    resolve_by: Optional[dt.datetime]
    deferred: bool
    text: str  # the sentence for the guest


def local_time_text(policy: Policy, moment: dt.datetime, now: dt.datetime) -> str:
    """'14:35', '明天 09:05' or '10月3日 09:05' in the policy's time zone."""
    local = moment.astimezone(policy.tz)
    today = now.astimezone(policy.tz).date()
    if local.date() == today:
        return local.strftime("%H:%M")
    if local.date() == today + dt.timedelta(days=1):
        return "明天 " + local.strftime("%H:%M")
    return f"{local.month}月{local.day}日 " + local.strftime("%H:%M")


def guest_promise(
    policy: Policy, sla_class: str, created_at: dt.datetime, property_id: Optional[str] = None
) -> Promise:
    """What to tell the guest when their ticket/order/handoff is created: who and by when.

    The conversation flows call this (through `bot.paging.promise_for`) so the guest hears the
    same deadlines the worker enforces.
    """
    plan = plan_clock(policy, sla_class, created_at, property_id)
    cls = policy.sla_class(sla_class, plan.property_id)
    first = plan.steps[0].notify if plan.steps else ("on_duty",)
    who = "、".join(dict.fromkeys(ROLE_WORDS[t] for t in first if t in ROLE_WORDS)) or "顾问"
    ack_text = local_time_text(policy, plan.ack_due_at, created_at)
    if plan.deferred:
        prop = policy.property(plan.property_id)
        text = (
            f"现在不在人工服务时间（{roster.service_hours_text(prop)}），"
            f"{who}会在 {ack_text} 前联系您。"
        )
    else:
        text = f"已通知{who}，{format_duration(cls.ack_within)}内（{ack_text} 前）会联系您"
        if plan.resolve_due_at is not None:
            text += f"，{local_time_text(policy, plan.resolve_due_at, created_at)} 前给您处理方案"
        text += "。"
    return Promise(
        who=who,
        ack_by=plan.ack_due_at,
        resolve_by=plan.resolve_due_at,
        deferred=plan.deferred,
        text=text,
    )

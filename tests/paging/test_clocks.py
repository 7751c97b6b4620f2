"""SLA rules with an injected clock: deadlines at creation, which steps fire, late, met/missed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.paging import clocks
from bot.paging.policy import load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
SH = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 10, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Friday


@pytest.fixture(scope="module")
def demo():
    return load_policy(ROOT / "data" / "sla_policy.yml")


def test_routine_complaint_plan(demo):
    plan = clocks.plan_clock(demo, "complaint_routine", T0)
    assert plan.started_at == T0 and not plan.deferred
    assert plan.ack_due_at == T0 + dt.timedelta(minutes=10)
    assert plan.resolve_due_at == T0 + dt.timedelta(hours=2)
    assert [(s.name, s.due_at - T0) for s in plan.steps] == [
        ("page", dt.timedelta(0)),
        ("repage", dt.timedelta(minutes=5)),
        ("escalate", dt.timedelta(minutes=10)),
        ("escalate_resolve", dt.timedelta(hours=2)),
    ]
    assert plan.steps[-1].until == "resolve"


def test_major_incident_pages_the_emergency_group_at_once(demo):
    plan = clocks.plan_clock(demo, "complaint_major", T0)
    first = plan.steps[0]
    assert (
        first.due_at == T0 and "emergency_group" in first.notify and "duty_manager" in first.notify
    )
    assert plan.ack_due_at == T0 + dt.timedelta(minutes=30)
    assert plan.resolve_due_at is None


def test_plan_is_in_utc_whatever_zone_created_at_has(demo):
    plan = clocks.plan_clock(demo, "addon_order", T0.astimezone(SH))
    assert plan.ack_due_at.tzinfo == UTC and plan.ack_due_at == T0 + dt.timedelta(minutes=10)


def test_unknown_class_and_naive_time(demo):
    with pytest.raises(KeyError, match="not in the policy"):
        clocks.plan_clock(demo, "nonsense", T0)
    with pytest.raises(ValueError, match="naive"):
        clocks.plan_clock(demo, "complaint_routine", dt.datetime(2026, 10, 2, 10))


def _office_hours_policy():
    return parse_policy(
        {
            "version": 1,
            "properties": {
                "default": {
                    "service_hours": [{"days": "all", "from": "09:00", "to": "22:00"}],
                    "roster": [{"userid": "a", "on_duty": [{"from": "09:00", "to": "22:00"}]}],
                    "supervisors": [{"userid": "s"}],
                }
            },
            "classes": {
                "human_request": {
                    "ack_within": "5m",
                    "service_hours_only": True,
                    "steps": [
                        {"name": "page", "after": "0s", "notify": ["on_duty"]},
                        {"name": "escalate", "after": "ack", "notify": ["supervisor", "guest"]},
                    ],
                }
            },
        },
        "t.yml",
        require_classes=(),
    )


def test_human_request_outside_service_hours_starts_at_the_next_opening():
    policy = _office_hours_policy()
    late_night = dt.datetime(2026, 10, 2, 23, 30, tzinfo=SH)
    plan = clocks.plan_clock(policy, "human_request", late_night)
    assert plan.deferred
    assert plan.started_at == dt.datetime(2026, 10, 3, 9, 0, tzinfo=SH)
    assert plan.ack_due_at == dt.datetime(2026, 10, 3, 9, 5, tzinfo=SH)
    promise = clocks.guest_promise(policy, "human_request", late_night)
    assert promise.deferred and "不在人工服务时间" in promise.text and "明天 09:05" in promise.text


def test_human_request_in_service_hours_starts_now():
    policy = _office_hours_policy()
    at = dt.datetime(2026, 10, 2, 21, 58, tzinfo=SH)
    plan = clocks.plan_clock(policy, "human_request", at)
    assert not plan.deferred and plan.ack_due_at == at + dt.timedelta(minutes=5)


ACK_DUE = T0 + dt.timedelta(minutes=10)


@pytest.mark.parametrize(
    "until,state,acked,resolved,expected",
    [
        ("ack", "running", None, None, "fire"),
        ("ack", "acknowledged", -1, None, "skipped"),  # acknowledged just before it fell due
        ("ack", "acknowledged", 0, None, "skipped"),  # exactly at it: met, no escalation
        ("ack", "acknowledged", 0.001, None, "fire"),  # just after: it was due first, it fires
        ("ack", "resolved", -60, -30, "skipped"),
        ("ack", "resolved", 30, 60, "fire"),  # fell due before the late ack: fires late
        ("ack", "cancelled", None, None, "skipped"),
        ("resolve", "running", None, None, "fire"),
        ("resolve", "acknowledged", -60, None, "fire"),
        ("resolve", "resolved", -60, -1, "skipped"),
        ("resolve", "resolved", -60, 0, "skipped"),  # resolved exactly at the deadline
        ("resolve", "resolved", -60, 5, "fire"),  # resolved after it fell due
        ("none", "resolved", -60, -1, "fire"),  # notices to the guest after resolving
        ("none", "cancelled", None, None, "skipped"),
    ],
)
def test_step_decision(until, state, acked, resolved, expected):
    def at(offset):
        return None if offset is None else ACK_DUE + dt.timedelta(seconds=offset)

    assert (
        clocks.step_decision(
            until, state, due_at=ACK_DUE, acknowledged_at=at(acked), resolved_at=at(resolved)
        )
        == expected
    )


def test_step_decision_rejects_unknown_state():
    with pytest.raises(ValueError):
        clocks.step_decision("ack", "sleeping")


@pytest.mark.parametrize(
    "delay,late", [(0, False), (1, False), (1.001, True), (120, True), (-0.5, False)]
)
def test_is_late(delay, late):
    assert clocks.is_late(T0, T0 + dt.timedelta(seconds=delay), dt.timedelta(seconds=1)) is late


DUE = T0 + dt.timedelta(minutes=10)


@pytest.mark.parametrize(
    "ack_offset,expected",
    [
        (-1, "met"),  # just before the deadline
        (0, "met"),  # exactly at the deadline
        (0.001, "missed"),  # just after
        (60, "missed"),
    ],
)
def test_acknowledging_before_at_after_the_deadline(ack_offset, expected):
    acked = DUE + dt.timedelta(seconds=ack_offset)
    assert clocks.outcome(DUE, acked, now=acked + dt.timedelta(hours=1)) == expected


def test_outcome_without_ack_depends_on_now():
    assert clocks.outcome(DUE, None, now=DUE) == "pending"
    assert clocks.outcome(DUE, None, now=DUE + dt.timedelta(microseconds=1)) == "missed"
    assert clocks.outcome(None, None, now=DUE) == "none"


def test_guest_promise_names_the_role_and_local_times(demo):
    promise = clocks.guest_promise(demo, "complaint_routine", T0)
    assert promise.who == "值班顾问"
    assert "10分钟内（10:10 前）" in promise.text and "12:00 前给您处理方案" in promise.text
    major = clocks.guest_promise(demo, "complaint_major", T0)
    assert "应急小组" in major.who and "30分钟内" in major.text


def test_local_time_text(demo):
    now = dt.datetime(2026, 10, 2, 10, 0, tzinfo=SH)
    assert clocks.local_time_text(demo, now + dt.timedelta(minutes=5), now) == "10:05"
    assert clocks.local_time_text(demo, now + dt.timedelta(days=1), now) == "明天 10:00"
    assert clocks.local_time_text(demo, now + dt.timedelta(days=3), now) == "10月5日 10:00"

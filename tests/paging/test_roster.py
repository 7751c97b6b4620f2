"""Roster and service-hours edge cases: nobody on duty, shifts over midnight, holidays."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from bot.paging import roster
from bot.paging.policy import parse_policy

SH = ZoneInfo("Asia/Shanghai")


def local(y, mo, d, h=0, mi=0, s=0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=SH)


def make_policy(*, service_hours=None, holidays=None, roster_=None):
    data = {
        "version": 1,
        "timezone": "Asia/Shanghai",
        "properties": {
            "default": {
                "service_hours": service_hours or [{"days": "all", "from": "09:00", "to": "22:00"}],
                "holidays": holidays or [],
                "roster": roster_
                if roster_ is not None
                else [
                    # Friday night shift over midnight
                    {
                        "userid": "night",
                        "name": "夜班",
                        "on_duty": [{"days": ["fri"], "from": "22:00", "to": "06:00"}],
                    },
                    {
                        "userid": "day1",
                        "name": "白班一",
                        "on_duty": [{"days": "weekdays", "from": "09:00", "to": "18:00"}],
                        "off": ["2026-10-01"],
                    },
                    {
                        "userid": "day2",
                        "name": "白班二",
                        "on_duty": [{"days": "all", "from": "09:00", "to": "18:00"}],
                    },
                ],
                "supervisors": [{"userid": "sup", "name": "主管"}],
            }
        },
        "classes": {
            "human_request": {
                "ack_within": "5m",
                "service_hours_only": True,
                "steps": [{"name": "page", "after": "0s", "notify": ["on_duty"]}],
            }
        },
    }
    return parse_policy(data, "t.yml", require_classes=())


# 2026-10-02 is a Friday; 2026-10-01 a Thursday.
FRI = (2026, 10, 2)


def test_overnight_shift_belongs_to_the_day_it_starts():
    policy = make_policy()
    prop = policy.property("default")
    night = prop.roster[0]
    assert not roster.is_on_duty(policy, night, local(*FRI, 21, 59))
    assert roster.is_on_duty(policy, night, local(*FRI, 22, 0))
    assert roster.is_on_duty(policy, night, local(2026, 10, 3, 5, 59))  # Saturday morning
    assert not roster.is_on_duty(policy, night, local(2026, 10, 3, 6, 0))  # end is exclusive
    assert not roster.is_on_duty(policy, night, local(2026, 10, 3, 22, 30))  # not a Saturday shift
    # Friday early morning belongs to Thursday night: no shift then.
    assert not roster.is_on_duty(policy, night, local(*FRI, 2, 0))


def test_nobody_on_duty_is_an_empty_answer():
    policy = make_policy()
    prop = policy.property("default")
    sunday_3am = local(2026, 10, 4, 3, 0)
    assert roster.on_duty(policy, prop, sunday_3am) == []
    assert roster.pick_on_duty(policy, prop, sunday_3am) is None
    assert roster.next_on_duty(policy, prop, sunday_3am, "day2") is None


def test_empty_roster_is_nobody():
    policy = make_policy()
    prop = dataclasses.replace(policy.property("default"), roster=())
    assert roster.pick_on_duty(policy, prop, local(*FRI, 10)) is None
    assert roster.next_on_duty(policy, prop, local(*FRI, 10), None) is None


def test_advisor_off_date_removes_their_shift():
    policy = make_policy()
    prop = policy.property("default")
    thursday_holiday = local(2026, 10, 1, 10, 0)
    assert [a.userid for a in roster.on_duty(policy, prop, thursday_holiday)] == ["day2"]
    assert [a.userid for a in roster.on_duty(policy, prop, local(*FRI, 10))] == ["day1", "day2"]


def test_least_loaded_first_then_roster_order():
    policy = make_policy()
    prop = policy.property("default")
    at = local(*FRI, 10)
    assert roster.pick_on_duty(policy, prop, at).userid == "day1"
    assert roster.pick_on_duty(policy, prop, at, load={"day1": 2, "day2": 1}).userid == "day2"
    assert roster.pick_on_duty(policy, prop, at, exclude={"day1"}).userid == "day2"


def test_next_on_duty_wraps_round_and_skips_the_current_one():
    policy = make_policy()
    prop = policy.property("default")
    at = local(*FRI, 10)
    assert roster.next_on_duty(policy, prop, at, "day1").userid == "day2"
    assert roster.next_on_duty(policy, prop, at, "day2").userid == "day1"  # wraps past "night"
    assert roster.next_on_duty(policy, prop, at, "stranger").userid == "day1"
    # Only one on duty: there is no "next".
    saturday = local(2026, 10, 3, 10)
    assert roster.next_on_duty(policy, prop, saturday, "day2") is None


def test_service_hours_over_midnight_and_next_opening():
    policy = make_policy(service_hours=[{"days": "all", "from": "20:00", "to": "02:00"}])
    prop = policy.property("default")
    assert roster.in_service_hours(policy, prop, local(*FRI, 23, 59))
    assert roster.in_service_hours(policy, prop, local(*FRI, 1, 30))  # Thursday's window
    assert not roster.in_service_hours(policy, prop, local(*FRI, 2, 0))
    assert roster.next_service_opening(policy, prop, local(*FRI, 2, 0)) == local(*FRI, 20, 0)
    at = local(*FRI, 21, 0)
    assert roster.next_service_opening(policy, prop, at) == at


def test_holiday_closes_service_hours_or_replaces_them():
    policy = make_policy(
        holidays=[
            "2026-10-01",
            {"date": "2026-10-02", "hours": [{"from": "10:00", "to": "12:00"}]},
        ]
    )
    prop = policy.property("default")
    assert not roster.in_service_hours(policy, prop, local(2026, 10, 1, 12, 0))
    assert roster.next_service_opening(policy, prop, local(2026, 10, 1, 12)) == local(*FRI, 10, 0)
    assert not roster.in_service_hours(policy, prop, local(*FRI, 9, 30))
    assert roster.in_service_hours(policy, prop, local(*FRI, 11, 0))
    assert not roster.in_service_hours(policy, prop, local(*FRI, 13, 0))
    assert roster.next_service_opening(policy, prop, local(*FRI, 13)) == local(2026, 10, 3, 9, 0)
    # The holiday does not take the advisors off duty.
    assert roster.pick_on_duty(policy, prop, local(2026, 10, 1, 12, 0)) is not None


def test_holiday_eve_overnight_window_is_the_eves():
    """A window starting the day before a holiday runs into the holiday morning."""
    policy = make_policy(
        service_hours=[{"days": "all", "from": "22:00", "to": "06:00"}], holidays=["2026-10-01"]
    )
    prop = policy.property("default")
    assert roster.in_service_hours(policy, prop, local(2026, 10, 1, 3, 0))  # Sept 30's window
    assert not roster.in_service_hours(policy, prop, local(2026, 10, 1, 23, 0))  # holiday's own
    assert roster.in_service_hours(policy, prop, local(*FRI, 3, 0)) is False


def test_moments_in_other_zones_are_converted():
    policy = make_policy()
    prop = policy.property("default")
    utc = local(*FRI, 10).astimezone(dt.timezone.utc)  # 02:00 UTC
    assert roster.pick_on_duty(policy, prop, utc).userid == "day1"


def test_naive_datetimes_are_refused():
    policy = make_policy()
    with pytest.raises(ValueError, match="naive"):
        roster.in_service_hours(policy, policy.property("default"), dt.datetime(2026, 10, 2, 10))


def test_no_service_hours_ever():
    policy = make_policy(holidays=[])
    prop = policy.property("default")
    closed = dataclasses.replace(prop, service_hours=())
    assert roster.next_service_opening(policy, closed, local(*FRI)) is None


def test_service_hours_text():
    policy = make_policy()
    assert roster.service_hours_text(policy.property("default")) == "每天 09:00-22:00"

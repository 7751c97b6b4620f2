from __future__ import annotations

import datetime as dt

import pytest

from bot.marketing.facts import GuestFacts, Stay, load_facts
from bot.marketing.segments import (
    SegmentError,
    health_band,
    lifecycle,
    parse_segment,
    value_band,
)
from bot.marketing.segments_service import SegmentService
from tests.marketing.conftest import TODAY, policy

P = policy(property_types={"island-trip": "trip"})


def guest(**kw) -> GuestFacts:
    base = dict(
        id=1,
        sender_id="g1",
        name="甲",
        tier="普通",
        points=0,
        birthday=None,
        owner_userid="advisor_li",
        external_userid="wm1",
        kf_external_userid=None,
        kf_open_kfid=None,
        is_demo=False,
    )
    base.update(kw)
    return GuestFacts(**base)


def stay(
    days_ago_out: int,
    nights: int = 2,
    prop: str = "shanghai-bund-hotel",
    bid: int = 1,
    purpose: str | None = None,
    city: str = "上海",
) -> Stay:
    out = TODAY - dt.timedelta(days=days_ago_out)
    return Stay(bid, prop, city, out - dt.timedelta(days=nights), out, "completed", purpose)


def test_lifecycle_windows_differ_per_property_type():
    hotel = guest(stays=[stay(200), stay(190, bid=2)])
    trip = guest(stays=[stay(200, prop="island-trip"), stay(190, prop="island-trip", bid=2)])
    assert lifecycle(hotel, TODAY, P) == "dormant"  # > 6 months since the hotel stay
    assert lifecycle(trip, TODAY, P) == "active"  # trips: 12 months
    assert lifecycle(guest(stays=[stay(10)]), TODAY, P) == "new"
    assert lifecycle(guest(), TODAY, P) == "new"
    assert lifecycle(guest(stays=[stay(400, prop="island-trip")]), TODAY, P) == "dormant"


def test_value_band_from_stays_per_year():
    four = guest(stays=[stay(d, bid=i) for i, d in enumerate((30, 90, 150, 300))])
    old = guest(stays=[stay(d, bid=i) for i, d in enumerate((400, 500, 600, 700))])
    two = guest(stays=[stay(30), stay(60, bid=2)])
    assert value_band(four, TODAY, P) == "high"
    assert value_band(old, TODAY, P) == "low"  # stays more than a year ago do not count
    assert value_band(two, TODAY, P) == "potential"


def test_health_band_falls_with_recency_and_open_complaints():
    assert (
        health_band(
            guest(
                stays=[stay(20)], last_interaction=dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
            ),
            TODAY,
            P,
        )
        == "good"
    )
    worried = guest(stays=[stay(200)], open_complaints=1)
    assert health_band(worried, TODAY, P) in ("watch", "at_risk")
    assert health_band(guest(stays=[stay(200)], open_complaints=2), TODAY, P) == "at_risk"


@pytest.mark.parametrize(
    "spec, member, outsider",
    [
        ({"tier_at_least": "金卡"}, guest(tier="铂金"), guest(tier="银卡")),
        ({"tier": ["银卡"]}, guest(tier="银卡"), guest(tier="金卡")),
        (
            {"tags_any": ["潜水", "interest:摄影"]},
            guest(tags={"interest:摄影", "摄影"}),
            guest(tags={"海景"}),
        ),
        ({"tags_all": ["潜水", "海景"]}, guest(tags={"潜水", "海景"}), guest(tags={"潜水"})),
        (
            {"scenario": ["honeymoon"]},
            guest(stays=[stay(10, purpose="蜜月")]),
            guest(stays=[stay(10, purpose="商务")]),
        ),
        (
            {"birthday_month": ["this"]},
            guest(birthday=dt.date(1990, 12, 24)),
            guest(birthday=dt.date(1990, 1, 24)),
        ),
        ({"birthday_month": ["next"]}, guest(birthday=dt.date(1990, 1, 2)), guest()),
        ({"last_stay_before": "-90d"}, guest(stays=[stay(100)]), guest(stays=[stay(10)])),
        ({"last_stay_after": "2026-10-01"}, guest(stays=[stay(10)]), guest(stays=[stay(100)])),
        ({"city": "三亚"}, guest(stays=[stay(10, city="三亚")]), guest(stays=[stay(10)])),
        ({"consent": "granted"}, guest(marketing_consent=True), guest(marketing_consent=False)),
        ({"consent": "not_granted"}, guest(), guest(marketing_consent=True)),
        (
            {"lifecycle": ["dormant"], "value": "low"},
            guest(stays=[stay(300)]),
            guest(stays=[stay(10)]),
        ),
    ],
)
def test_rules_select_members_and_name_what_outsiders_fail(spec, member, outsider):
    segment = parse_segment(spec)
    assert segment.evaluate(member, TODAY, P) == []
    failed = segment.evaluate(outsider, TODAY, P)
    assert failed and set(failed) <= set(spec)


def test_upcoming_within_days_uses_the_injected_day():
    soon = guest(
        upcoming=[
            Stay(
                5,
                "x",
                "三亚",
                TODAY + dt.timedelta(days=6),
                TODAY + dt.timedelta(days=9),
                "booked",
                None,
            )
        ]
    )
    segment = parse_segment({"upcoming_within_days": 7})
    assert segment.evaluate(soon, TODAY, P) == []
    assert segment.evaluate(soon, TODAY - dt.timedelta(days=5), P) == ["upcoming_within_days"]


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"tierr": "金卡"}, "unknown field 'tierr'"),
        ({"tier": ["黑卡"]}, "unknown value(s) 黑卡"),
        ({"tier_at_least": "黑卡"}, "unknown tier '黑卡'"),
        ({"lifecycle": "sleepy"}, "segment.lifecycle"),
        ({"last_stay_before": "last spring"}, "segment.last_stay_before"),
        ({"birthday_month": [13]}, "13"),
        ({"upcoming_within_days": -1}, "upcoming_within_days"),
        ({"consent": "yes"}, "segment.consent"),
        ({"tags_any": []}, "tags_any"),
        ("tier: 金卡", "mapping"),
    ],
)
def test_bad_segments_are_refused_with_the_field(spec, words):
    with pytest.raises(SegmentError) as info:
        parse_segment(spec)
    assert words in str(info.value)


def test_count_and_list_on_the_demo_data(demo):
    service = SegmentService(demo, P)
    result = service.count("gold_and_above", today=TODAY)
    assert result["count"] == 3 and result["guests"] == 7
    assert result["excluded_by_rule"] == {"tier_at_least": 3, "consent": 1}
    listing = service.list({"tier_at_least": "金卡"}, include_outside=True, today=TODAY)
    assert {r["sender_id"] for r in listing["members"]} == {
        "demo-lin",
        "demo-chen",
        "demo-sun",
        "kf:wm_guest_001",
    }
    assert {r["sender_id"]: r["failed_rules"] for r in listing["outside"]}["demo-wang"] == [
        "tier_at_least"
    ]


def test_facts_use_the_bookings_definitions(demo):
    facts = {f.sender_id: f for f in load_facts(demo, TODAY)}
    chen = facts["demo-chen"]
    assert [s.booking_id for s in chen.stays] and chen.booking_facts.stays == 1
    assert chen.next_stay.check_in == TODAY + dt.timedelta(days=2)
    assert facts["demo-sun"].marketing_consent is False
    assert facts["demo-zhao"].stays == [] and facts["demo-zhao"].upcoming == []


def test_spend_and_channel_come_from_the_bookings_facts():
    big = guest(as_of=TODAY)
    big.bookings = [
        Stay(
            1,
            "p",
            "上海",
            TODAY - dt.timedelta(days=40),
            TODAY - dt.timedelta(days=38),
            "completed",
            None,
            amount=25000,
            channel="ctrip",
        )
    ]
    big.stays = list(big.bookings)
    assert value_band(big, TODAY, P) == "high"  # one stay, but 25,000 CNY in 12 months
    assert parse_segment({"channel": "ctrip"}).evaluate(big, TODAY, P) == []
    assert parse_segment({"channel": ["direct"]}).evaluate(big, TODAY, P) == ["channel"]

"""Guest-facing answers: every fact comes from the knowledge base (read here from the KB, not
repeated as strings), nothing is left unfilled, and what is not known is said to be unknown."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from bot.knowledge import answers
from bot.knowledge.answers import Trip, cn_date, fmt_temp
from bot.knowledge.weather import DemoWeatherProvider

from .helpers import assert_clean, assert_short, forecast, week

SANYA, SHANGHAI = "sanya-haitang-resort", "shanghai-bund-hotel"


@pytest.fixture
def sanya(kb):
    return kb.property(SANYA)


@pytest.fixture
def shanghai(kb):
    return kb.property(SHANGHAI)


def trip_from(today: date, days_ahead: int, nights: int, prop=SANYA, city="三亚", **kw) -> Trip:
    check_in = today + timedelta(days=days_ahead)
    return Trip(prop, city, check_in, check_in + timedelta(days=nights), **kw)


def test_cn_date():
    assert cn_date(date(2026, 11, 29)) == "11月29日（周日）"
    assert fmt_temp(28.0) == "28" and fmt_temp(27.5) == "27.5"


# ---- weather -------------------------------------------------------------------------------------
def test_weather_within_the_forecast(kb, today):
    trip = trip_from(today, 2, 3)
    forecasts = DemoWeatherProvider(kb, today=lambda: today).daily(
        "三亚", trip.check_in, trip.check_out
    )
    text = answers.weather_answer(trip, forecasts, today, kb=kb)
    assert_clean(text)
    assert_short(text)
    assert len(forecasts) == 4
    for f in forecasts:
        assert cn_date(f.date) in text
        assert f"{fmt_temp(f.temp_min)}~{fmt_temp(f.temp_max)}°C" in text
    assert "往年同期" not in text


def test_weather_long_stay_is_summarised(kb, today):
    trip = trip_from(today, 0, 6)
    forecasts = week(trip.check_in, 7, tmin=20, tmax=28)
    forecasts[3] = forecast(forecasts[3].date, 21, 26, text="中雨", precip=12.0)
    text = answers.weather_answer(trip, forecasts, today, kb=kb)
    assert_clean(text)
    assert_short(text, 6)
    assert "20~28°C" in text and f"{cn_date(forecasts[3].date)}有雨" in text


def test_stay_beyond_the_horizon(kb, today):
    trip = trip_from(today, 20, 3, prop=SHANGHAI, city="上海")
    forecasts = DemoWeatherProvider(kb, today=lambda: today).daily(
        "上海", trip.check_in, trip.check_out
    )
    assert forecasts == []
    text = answers.weather_answer(trip, forecasts, today, kb=kb)
    assert_clean(text)
    assert_short(text, 6)
    norm = kb.climate("上海").month(trip.check_in.month)
    assert "还没出来" in text and "往年同期" in text
    assert f"最高{fmt_temp(norm.high)}°C" in text and f"最低{fmt_temp(norm.low)}°C" in text
    assert cn_date(trip.check_in - timedelta(days=3)) in text  # the T-3 forecast is promised
    assert cn_date(today + timedelta(days=6)) in text  # how far the forecast reaches


def test_stay_partly_beyond_the_horizon(kb, today):
    trip = trip_from(today, 4, 6)  # check-in within the 7 days, check-out beyond
    forecasts = DemoWeatherProvider(kb, today=lambda: today).daily(
        "三亚", trip.check_in, trip.check_out
    )
    assert 0 < len(forecasts) < len(trip.stay_days())
    text = answers.weather_answer(trip, forecasts, today, kb=kb)
    assert_clean(text)
    first_missing = forecasts[-1].date + timedelta(days=1)
    assert f"{first_missing.month}月{first_missing.day}日以后的预报还没出来" in text
    assert "往年同期" in text
    assert f"最高{fmt_temp(kb.climate('三亚').month(first_missing.month).high)}°C" in text


def test_weather_unavailable_within_the_horizon(kb, today):
    trip = trip_from(today, 1, 2)
    text = answers.weather_answer(trip, [], today, kb=kb)
    assert_clean(text)
    assert "暂时没能查到" in text and "往年同期" in text and "转人工" in text


def test_typhoon_season_is_flagged(kb):
    today = date(2026, 8, 1)
    trip = trip_from(today, 30, 2)  # September in Sanya
    assert 9 in kb.climate("三亚").typhoon_season
    text = answers.weather_answer(trip, [], today, kb=kb)
    assert "台风" in text


def test_weather_after_the_trip(kb, today):
    trip = trip_from(today, -5, 2)
    text = answers.weather_answer(trip, [], today, kb=kb)
    assert_clean(text)
    assert "已经结束" in text


# ---- bookings ------------------------------------------------------------------------------------
def test_itinerary(kb, today, sanya, shanghai):
    later = trip_from(
        today, 30, 2, prop=SHANGHAI, city="上海", room_type="江景双床房", party_size=1
    )
    sooner = trip_from(
        today,
        3,
        3,
        room_type="海景大床房",
        purpose="蜜月",
        party_size=2,
        addons=[
            (
                "接机",
                datetime.combine(today + timedelta(days=3), datetime.min.time()).replace(
                    hour=14, minute=30
                ),
                "confirmed",
            ),
            answers.Addon("蜜月布置", today + timedelta(days=3), "pending"),
        ],
    )
    text = answers.itinerary_answer([later, sooner], kb=kb)
    assert_clean(text)
    assert_short(text)
    assert text.index(sanya.name) < text.index(shanghai.name)  # soonest first
    for t in (later, sooner):
        assert cn_date(t.check_in) in text and cn_date(t.check_out) in text
        assert f"共{t.nights}晚" in text and t.room_type in text
    assert "接机" in text and "14:30" in text and "已确认" in text
    assert "蜜月布置" in text and "待确认" in text


def test_itinerary_without_bookings(kb):
    assert answers.itinerary_answer([], kb=kb) == answers.no_booking_answer()
    assert "转人工" in answers.no_booking_answer()


def test_which_stay_keeps_the_callers_order(today):
    a = trip_from(today, 30, 2, prop=SHANGHAI, city="上海")
    b = trip_from(today, 3, 3)
    text = answers.which_stay_question([a, b])
    assert_clean(text)
    assert text.index("1. " + answers.stay_label(a)) < text.index("2. " + answers.stay_label(b))
    assert answers.stay_label(b).startswith("三亚 ")


# ---- property facts ------------------------------------------------------------------------------
@pytest.mark.parametrize("pid", [SANYA, SHANGHAI])
def test_checkin_and_checkout(kb, pid):
    prop = kb.property(pid)
    checkin = answers.checkin_answer(prop)
    checkout = answers.checkout_answer(prop)
    for text in (checkin, checkout):
        assert_clean(text)
        assert_short(text, 6)
        assert prop.checkin.time in checkin and prop.checkout.time in text
    assert prop.checkin.early in checkin and prop.phone in checkin
    assert prop.checkout.late in checkout
    assert prop.amenity("luggage").summary in checkout


@pytest.mark.parametrize("pid", [SANYA, SHANGHAI])
def test_every_listed_amenity(kb, pid):
    prop = kb.property(pid)
    for key, amenity in prop.amenities.items():
        text = answers.amenity_answer(prop, key, kb=kb)
        assert_clean(text)
        assert_short(text, 9)
        assert prop.name in text and amenity.label in text and amenity.summary in text
        for fact in (
            amenity.hours,
            amenity.location,
            amenity.price,
            amenity.booking,
            *amenity.notes,
        ):
            if fact:
                assert fact in text


def test_amenity_by_guest_word(kb, sanya):
    text = answers.amenity_answer(sanya, "游泳池几点开", kb=kb)
    assert sanya.amenity("pool").hours in text


@pytest.mark.parametrize("key", ["pool", "kids_club", "spa"])
def test_amenity_not_listed_offers_a_human(kb, shanghai, sanya, key):
    text = answers.amenity_answer(shanghai, key, kb=kb)
    assert_clean(text)
    assert kb.vocabulary[key].label in text and "没有" in text and "转人工" in text
    assert shanghai.phone in text
    assert sanya.amenity(key).summary not in text  # never borrows another hotel's facts
    assert "时间:" not in text


def test_amenity_unknown_word(kb, shanghai):
    text = answers.amenity_answer(shanghai, "高尔夫球场", kb=kb)
    assert "高尔夫球场" in text and "转人工" in text


def test_pet_owner_hears_the_pet_policy(kb, sanya, shanghai):
    policy = sanya.amenity("pet_policy")
    with_pet = answers.amenity_answer(sanya, "breakfast", guest_tags=("宠物友好",), kb=kb)
    assert_clean(with_pet)
    assert policy.summary in with_pet and policy.price in with_pet
    without = answers.amenity_answer(sanya, "breakfast", guest_tags=("商务",), kb=kb)
    assert policy.summary not in without
    # asking the pet policy itself does not repeat it
    direct = answers.amenity_answer(sanya, "pet_policy", guest_tags=("pet",), kb=kb)
    assert direct.count(policy.summary) == 1
    # Shanghai's policy is "no pets": a pet owner hears that, not the resort's
    sh = answers.amenity_answer(shanghai, "gym", guest_tags=["pet"], kb=kb)
    assert shanghai.amenity("pet_policy").summary in sh and policy.summary not in sh


def test_amenity_overview(kb, shanghai):
    text = answers.amenity_overview_answer(shanghai, guest_tags=("pet",))
    assert_clean(text)
    for key, amenity in shanghai.amenities.items():
        if key != "pet_policy":
            assert amenity.label in text
    assert kb.vocabulary["pool"].label not in text
    assert shanghai.amenity("pet_policy").summary in text
    assert answers.amenity_label("kids_club", kb=kb) == kb.vocabulary["kids_club"].label


def test_directions_overview(sanya):
    text = answers.directions_answer(sanya)
    assert_clean(text)
    assert_short(text, 6)
    assert sanya.address in text
    for route in sanya.directions:
        assert route.how[0] in text


@pytest.mark.parametrize(
    "origin,key", [("机场", "airport"), ("我坐高铁到三亚站", "rail"), ("开车", "self_drive")]
)
def test_directions_from_an_origin(sanya, origin, key):
    route = next(r for r in sanya.directions if r.key == key)
    text = answers.directions_answer(sanya, origin)
    assert_clean(text)
    assert_short(text, 6)
    assert sanya.address in text
    for line in route.how:
        assert line in text


def test_directions_longest_match_wins(shanghai):
    hongqiao = next(r for r in shanghai.directions if r.key == "hongqiao")
    assert hongqiao.how[0] in answers.directions_answer(shanghai, "虹桥机场")


def test_directions_from_an_unlisted_origin(shanghai):
    text = answers.directions_answer(shanghai, "迪士尼")
    assert_clean(text)
    assert "迪士尼" in text and "没有" in text and "转人工" in text and shanghai.address in text


@pytest.mark.parametrize("pid", [SANYA, SHANGHAI])
def test_emergency(kb, pid):
    prop = kb.property(pid)
    e = prop.emergency
    text = answers.emergency_answer(prop)
    assert_clean(text)
    assert_short(text, 6)
    for fact in (
        e.front_desk,
        e.hospital.name,
        e.hospital.phone,
        e.police,
        e.ambulance,
        e.fire,
        e.tourism_complaint,
        e.hospital.demo_note,
    ):
        assert fact in text


def test_unknown_fact(sanya):
    text = answers.unknown_fact_answer(sanya, "高尔夫球场")
    assert_clean(text)
    assert "高尔夫球场" in text and "转人工" in text and sanya.phone in text
    no_prop = answers.unknown_fact_answer(None, "这家酒店的资料")
    assert_clean(no_prop)
    assert "转人工" in no_prop


def test_pretrip_reminder(kb, today, sanya):
    trip = trip_from(today, 3, 3, purpose="度假")
    forecasts = DemoWeatherProvider(kb, today=lambda: today).daily(
        "三亚", trip.check_in, trip.check_out
    )
    text = answers.pretrip_reminder(trip, forecasts, today, kb=kb)
    assert_clean(text)
    assert sanya.name in text and sanya.emergency.front_desk in text
    assert sanya.dining_tips[0].text in text
    assert answers.weather_answer(trip, forecasts, today, kb=kb) in text
    assert answers.packing_answer(trip, forecasts, kb=kb) in text


def test_default_knowledge_base_from_settings(sanya, today):
    """Without `kb=`, answers use the knowledge base the settings point at."""
    text = answers.amenity_answer(sanya, "wifi")
    assert sanya.amenity("wifi").summary in text

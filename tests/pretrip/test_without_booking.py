"""Questions that need no booking are answered from the city, dates or hotel the guest names."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.pretrip import named_dates
from tests.pretrip.conftest import TODAY  # 2026-07-01, a Wednesday

NEW = "kf:wmNEWGUEST"


def test_weather_and_packing_for_the_city_and_week_named(service):
    reply = service.answer(
        "packing", NEW, destination="三亚", text="我下周去三亚，天气怎么样？要带什么衣服？"
    )
    weather, packing = reply.texts
    assert not reply.link_needed
    assert "三亚" in weather and "7月6日" in weather  # next week starts on Monday 6 July
    assert "°C" in weather  # the forecast's days, not a refusal
    assert "入住前3天" not in weather  # no booking: no T-3 promise we could not keep
    assert "三亚" in packing and "：" in packing


def test_traditional_chinese_city_without_an_entity(service):
    reply = service.answer("weather", NEW, text="下禮拜去三亞，天氣如何")
    assert "三亚" in reply.texts[0] and not reply.link_needed


def test_hotel_facts_from_the_hotel_or_city_named(service):
    breakfast = service.answer("amenity", NEW, amenity="breakfast", text="海棠湾云栖早餐几点")
    assert "07:00" in breakfast.texts[0]
    checkin = service.answer("checkin", NEW, destination="上海", text="上海那家几点能入住")
    assert "14:00" in checkin.texts[0] or "15:00" in checkin.texts[0]
    assert not checkin.link_needed


def test_a_stay_question_naming_nothing_asks_for_the_booking(service):
    reply = service.answer("checkin", NEW, text="我几点可以入住")
    assert reply.link_needed and "关联" in reply.texts[0]
    itinerary = service.answer("itinerary", NEW, text="我的行程是什么")
    assert itinerary.link_needed


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("下周去三亚", dt.date(2026, 7, 6), dt.date(2026, 7, 12)),
        ("这周末去上海", dt.date(2026, 7, 4), dt.date(2026, 7, 5)),
        ("明天三亚天气", dt.date(2026, 7, 2), dt.date(2026, 7, 2)),
        ("三亚天气怎么样", TODAY, dt.date(2026, 7, 3)),
        ("昨天三亚下雨了吗", TODAY, TODAY),
    ],
)
def test_named_dates(text, start, end):
    assert named_dates(text, TODAY) == (start, end)

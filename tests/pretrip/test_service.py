"""The pre-trip service on a real (SQLite) CRM with the demo guests and the real knowledge base."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.crm.store import CRMStore, StoreUnavailable
from bot.knowledge.weather import WeatherUnavailable
from bot.pretrip import PreTripService

from .conftest import TODAY


def test_weather_uses_the_guests_stay_and_the_forecast(service, store, kb):
    booking = store.upcoming_bookings("demo-lin", TODAY)[0]
    forecast = service.weather.daily("三亚", booking.check_in, booking.check_out)
    reply = service.answer("weather", "demo-lin")

    weather_text, packing_text = reply.texts
    assert "三亚" in weather_text
    assert f"{booking.check_in.month}月{booking.check_in.day}日" in weather_text
    # Every forecast day inside the stay is reported with its own temperatures.
    assert forecast, "the demo stay starts inside the forecast horizon"
    for day in forecast:
        assert f"{day.date.month}月{day.date.day}日" in weather_text
    assert "泳衣" in packing_text or "防晒" in packing_text  # a beach trip in summer
    assert reply.pending_topic is None


def test_a_packing_question_that_also_asks_the_weather_gets_both(service):
    both = service.answer("packing", "demo-lin", text="我下周去三亚，天气怎么样？要带什么衣服？")
    weather = service.answer("weather", "demo-lin")
    assert both.texts == weather.texts and len(both.texts) == 2  # forecast, then the packing list
    packing_only = service.answer("packing", "demo-lin", text="要帶什麼衣服")
    assert len(packing_only.texts) == 1 and packing_only.texts[0] != weather.texts[0]


def test_packing_for_a_business_trip_to_a_city_differs_from_the_beach(service):
    beach = service.answer("packing", "demo-lin").texts[0]
    city = service.answer("packing", "demo-chen").texts[0]
    assert beach != city
    assert "泳衣" not in city


def test_itinerary_lists_the_stay_and_the_ordered_addon_in_china_time(service, store):
    text = service.answer("itinerary", "demo-lin").texts[0]
    booking = store.upcoming_bookings("demo-lin", TODAY)[0]
    order = store.orders_for_booking(booking.id)[0]
    assert "三亚海棠湾云栖度假酒店" in text and booking.room_type in text
    local = order.scheduled_at.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert f"{local:%H:%M}" in text


def test_checkin_and_checkout_times_come_from_the_knowledge_base(service, kb):
    prop = kb.property("shanghai-bund-hotel")
    assert prop.checkin.time in service.answer("checkin", "demo-chen").texts[0]
    assert prop.checkout.time in service.answer("checkout", "demo-chen").texts[0]


def test_amenity_answer_and_unknown_amenity_offers_a_human(service, kb):
    breakfast = kb.amenity("sanya-haitang-resort", "breakfast")
    text = service.answer("amenity", "demo-lin", amenity="breakfast").texts[0]
    assert breakfast.hours.split("–")[0][:5] in text

    # 上海 hotel lists no pool: the bot says so and offers a person, it does not invent one.
    reply = service.answer("amenity", "demo-chen", amenity="pool")
    assert reply.offered_human
    assert "转人工" in reply.texts[0]


def test_amenity_without_an_entity_gives_an_overview(service):
    reply = service.answer("amenity", "demo-lin")
    assert "早餐" in reply.texts[0]


def test_pet_owner_hears_the_pet_policy(service, store, kb):
    store.upsert_tag("demo-lin", "pet", "宠物友好", source_message="带狗狗可以住吗", confidence=0.9)
    text = service.answer("amenity", "demo-lin", amenity="pool").texts[0]
    assert "宠物" in text


def test_guest_with_two_stays_is_asked_which_then_answered(service, store):
    reply = service.answer("weather", "demo-wang")
    assert reply.pending_topic == "weather"
    assert len(reply.buttons) == 2 and "上海" in reply.texts[0] and "三亚" in reply.texts[0]

    by_city = service.choose_stay("demo-wang", "weather", text="三亚那个")
    assert "三亚" in by_city.texts[0] and by_city.pending_topic is None

    by_ordinal = service.choose_stay("demo-wang", "checkin", text="第一个")
    assert "上海外滩云栖酒店" in by_ordinal.texts[0]

    sanya = [b for b in store.upcoming_bookings("demo-wang", TODAY) if b.city == "三亚"][0]
    by_button = service.choose_stay("demo-wang", "directions", booking_id=str(sanya.id))
    assert "凤凰" in by_button.texts[0]


def test_an_unclear_choice_asks_again(service):
    reply = service.choose_stay("demo-wang", "weather", text="随便")
    assert reply.pending_topic == "weather" and len(reply.buttons) == 2


def test_a_destination_in_the_question_picks_the_stay(service):
    reply = service.answer("directions", "demo-wang", destination="三亚")
    assert reply.pending_topic is None and "凤凰" in reply.texts[0]


@pytest.mark.parametrize("sender", ["demo-zhao", "someone-never-seen"])
def test_no_booking_asks_for_it_once_then_offers_a_human(service, sender):
    first = service.answer("weather", sender)
    assert first.link_needed and not first.offered_human  # the linking form asks next
    reply = service.answer("weather", sender, may_ask_link=False)
    assert not reply.link_needed and reply.offered_human and "转人工" in reply.texts[0]


def test_weather_outage_falls_back_to_marked_climate_norms(store, kb):
    class Down:
        horizon_days = 7

        def daily(self, city, start, end):
            raise WeatherUnavailable("timeout", "no answer in 3 s")

    service = PreTripService(store=store, kb=kb, weather=Down(), today=lambda: TODAY)
    text = service.answer("weather", "demo-lin").texts[0]
    assert "往年同期" in text  # never presented as a forecast


def test_unknown_topic_is_a_programming_error(service):
    with pytest.raises(ValueError):
        service.answer("horoscope", "demo-lin")


def test_database_outage_raises_store_unavailable(kb, tmp_path):
    store = CRMStore(f"sqlite:///{tmp_path}/missing-dir/none.db")
    service = PreTripService(store=store, kb=kb, weather=None, today=lambda: TODAY)
    with pytest.raises(StoreUnavailable):
        service.answer("weather", "demo-lin")

"""Pre-trip actions end to end through the real service container and a demo CRM."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions._common import STORE_DOWN_TEXT
from actions.pretrip import (
    ActionAnswerAmenity,
    ActionAnswerItinerary,
    ActionAnswerWeather,
    ActionChooseStay,
)
from bot.bookings.texts import render
from bot.crm.store import StoreUnavailable

from .helpers import entity, tracker_for


async def run(action, tracker):
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, {})
    return dispatcher.messages, events


async def test_weather_action_answers_from_the_booking(live_services):
    booking = live_services.store.upcoming_bookings("demo-lin")[0]
    messages, events = await run(
        ActionAnswerWeather(), tracker_for("demo-lin", "三亚那几天天气咋样", "ask_weather")
    )
    assert len(messages) == 2  # the forecast, then what to pack
    assert f"{booking.check_in.month}月{booking.check_in.day}日" in messages[0]["text"]
    assert events == [SlotSet("pending_topic", None)]


async def test_amenity_entity_reaches_the_answer(live_services):
    messages, _ = await run(
        ActionAnswerAmenity(),
        tracker_for(
            "demo-lin", "早饭几点开始", "ask_amenity", entities=[entity("amenity", "breakfast")]
        ),
    )
    breakfast = live_services.kb.property("sanya-haitang-resort").amenity("breakfast")
    assert breakfast.hours and breakfast.hours in messages[0]["text"]


async def test_two_stays_ask_with_buttons_and_remember_the_question(live_services):
    messages, events = await run(
        ActionAnswerWeather(), tracker_for("demo-wang", "天气怎么样", "ask_weather")
    )
    assert len(messages[-1]["buttons"]) == 2
    assert all(b["payload"].startswith("/choose_stay") for b in messages[-1]["buttons"])
    assert events == [SlotSet("pending_topic", "weather")]

    messages, events = await run(
        ActionChooseStay(),
        tracker_for(
            "demo-wang",
            "三亚的",
            "choose_stay",
            entities=[entity("destination", "三亚")],
            slots={"pending_topic": "weather"},
        ),
    )
    sanya = next(
        b for b in live_services.store.upcoming_bookings("demo-wang") if "sanya" in b.property_id
    )
    assert f"{sanya.check_in.month}月{sanya.check_in.day}日" in messages[0]["text"]
    assert events == [SlotSet("pending_topic", None)]


async def test_itinerary_for_a_guest_without_bookings(live_services):
    messages, events = await run(
        ActionAnswerItinerary(), tracker_for("demo-zhao", "我的行程", "ask_itinerary")
    )
    assert messages[0]["text"] == render("ask_link", asked_before=False)  # asked once...
    assert {"event": "slot", "name": "link_asked", "value": True} in [
        {k: e.get(k) for k in ("event", "name", "value")} for e in events
    ]
    messages, events = await run(
        ActionAnswerItinerary(),
        tracker_for("demo-zhao", "我的行程", "ask_itinerary", slots={"link_asked": True}),
    )
    assert messages[0]["text"] == render("ask_link", asked_before=True)  # ...then a person offered


async def test_database_outage_gets_a_graceful_reply(live_services, monkeypatch):
    def down(*args, **kwargs):
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(live_services.store, "upcoming_bookings", down)
    messages, events = await run(
        ActionAnswerWeather(), tracker_for("demo-lin", "天气", "ask_weather")
    )
    assert messages[0]["text"] == STORE_DOWN_TEXT
    assert events == []


@pytest.mark.parametrize("cls", [ActionAnswerWeather, ActionAnswerAmenity, ActionChooseStay])
def test_action_names_match_the_domain(cls):
    import yaml

    from bot.settings import PROJECT_ROOT

    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert cls().name() in domain["actions"]


async def test_weather_then_the_second_request_of_the_same_message(live_services):
    """ "天气怎么样？顺便帮我订个接机": the forecast, then the order form runs next."""
    from rasa_sdk.events import FollowupAction

    tracker = tracker_for("demo-lin", "三亚天气怎么样？顺便帮我订个接机", "ask_weather")
    tracker.latest_message["second_request"] = {"intent": "order_addon", "text": "帮我订个接机"}
    messages, events = await run(ActionAnswerWeather(), tracker)
    assert "帮我订个接机" in messages[-1]["text"]
    assert events[-1] == FollowupAction("addon_order_form")

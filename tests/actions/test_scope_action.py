"""Out of scope with manners (actions/scope.py): a near-domain request gets "I can't, but ..."
with the human offer; any other out-of-scope message the generic answer."""

from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher

from actions.scope import ActionOutOfScope, near_domain
from bot.scope import HUMAN_OFFER

from .helpers import tracker_for


async def run(tracker):
    dispatcher = CollectingDispatcher()
    events = await ActionOutOfScope().run(dispatcher, tracker, {})
    return dispatcher.messages, events


def with_near_domain(text, category):
    tracker = tracker_for("guest-1", text, "out_of_scope")
    tracker.latest_message["near_domain"] = category
    return tracker


async def test_a_taxi_app_request_gets_the_alternative_and_a_person():
    messages, events = await run(with_near_domain("帮我叫个滴滴", "ride_hailing"))
    assert len(messages) == 1 and events == []
    text = messages[0]["text"]
    assert "接送" in text and text.endswith(HUMAN_OFFER)


async def test_food_delivery_and_other_hotels_get_their_own_answer():
    food, _ = await run(with_near_domain("外卖怎么还没到", "food_delivery"))
    hotel, _ = await run(with_near_domain("别的酒店还有房吗", "other_hotel"))
    assert "外卖" in food[0]["text"] and "其他酒店" in hotel[0]["text"]
    assert food[0]["text"] != hotel[0]["text"]


async def test_plain_out_of_scope_and_unknown_categories_get_the_generic_answer():
    plain, _ = await run(tracker_for("guest-1", "帮我写首诗", "out_of_scope"))
    unknown, _ = await run(with_near_domain("帮我写首诗", "no_such_category"))
    generic = near_domain().default_reply
    assert "转接人工" in generic
    for messages in (plain, unknown):
        assert [m["text"] for m in messages] == [generic]

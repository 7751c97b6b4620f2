"""Pre-trip answers: weather, packing, itinerary, check-in/out, amenities, directions, emergency.

Thin: read the tracker, ask `bot.pretrip.PreTripService`, say its reply.
"""

from __future__ import annotations

import abc
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions._common import call, say, say_private, store_down
from actions.second_request import then_second_request
from bot.crm.store import StoreUnavailable
from bot.services import get_services


def _events(reply) -> List[Dict[Text, Any]]:
    events = [SlotSet("pending_topic", reply.pending_topic)]
    if getattr(reply, "link_needed", False):  # asked for a booking reference: only once
        events.append(SlotSet("link_asked", True))
    return events


async def may_ask_link(tracker: Tracker) -> bool:
    """Ask for a booking reference only once per conversation, and not while linking is
    locked for this sender after too many wrong answers."""
    if tracker.get_slot("link_asked"):
        return False
    return await call(get_services().identity.locked_until, tracker.sender_id) is None


# The intent each topic answers where the names differ (data/rules/pretrip.yml).
INTENT_OF_TOPIC = {
    "checkin": "ask_checkin_time",
    "checkout": "ask_checkout_time",
    "emergency": "ask_emergency_contact",
}

# Answers about the guest's own bookings: never posted in a customer group (group_privacy).
PRIVATE_TOPICS = frozenset({"itinerary"})


class PreTripAnswer(Action, metaclass=abc.ABCMeta):
    """One action per topic; the topic is the only thing that differs (abstract, so rasa_sdk
    registers only the subclasses)."""

    @property
    @abc.abstractmethod
    def topic(self) -> str:
        """The `bot.pretrip.TOPICS` entry this action answers."""

    def name(self) -> Text:
        return f"action_answer_{self.topic}"

    @property
    def intent(self) -> str:
        """The intent this action answers (the rules map ask_<x> to it)."""
        return INTENT_OF_TOPIC.get(self.topic, f"ask_{self.topic}")

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        pretrip = get_services().pretrip
        try:
            reply = await call(
                pretrip.answer,
                self.topic,
                tracker.sender_id,
                amenity=next(tracker.get_latest_entity_values("amenity"), None),
                destination=next(tracker.get_latest_entity_values("destination"), None),
                booking_id=next(tracker.get_latest_entity_values("booking_id"), None),
                text=(tracker.latest_message or {}).get("text"),
                may_ask_link=await may_ask_link(tracker),
            )
        except StoreUnavailable as exc:
            return store_down(dispatcher, exc)
        if self.topic in PRIVATE_TOPICS:
            say_private(dispatcher, tracker, reply)
        else:
            say(dispatcher, reply)
        # "天气怎么样？顺便帮我订个接机": the second request runs next (actions/second_request.py)
        return _events(reply) + then_second_request(
            dispatcher, tracker, self.intent, waiting=bool(reply.pending_topic)
        )


class ActionAnswerWeather(PreTripAnswer):
    topic = "weather"


class ActionAnswerPacking(PreTripAnswer):
    topic = "packing"


class ActionAnswerItinerary(PreTripAnswer):
    topic = "itinerary"


class ActionAnswerCheckin(PreTripAnswer):
    topic = "checkin"


class ActionAnswerCheckout(PreTripAnswer):
    topic = "checkout"


class ActionAnswerAmenity(PreTripAnswer):
    topic = "amenity"


class ActionAnswerDirections(PreTripAnswer):
    topic = "directions"


class ActionAnswerEmergency(PreTripAnswer):
    topic = "emergency"


class ActionChooseStay(Action):
    """The guest said which of several stays they meant; answer the question that was waiting."""

    def name(self) -> Text:
        return "action_choose_stay"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        pretrip = get_services().pretrip
        try:
            reply = await call(
                pretrip.choose_stay,
                tracker.sender_id,
                tracker.get_slot("pending_topic"),
                text=tracker.latest_message.get("text") or "",
                destination=next(tracker.get_latest_entity_values("destination"), None),
                booking_id=next(tracker.get_latest_entity_values("booking_id"), None),
                amenity=tracker.get_slot("amenity"),
            )
        except StoreUnavailable as exc:
            return store_down(dispatcher, exc)
        if tracker.get_slot("pending_topic") in PRIVATE_TOPICS:
            say_private(dispatcher, tracker, reply)
        else:
            say(dispatcher, reply)
        return _events(reply)

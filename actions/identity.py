"""Tying a WeCom guest to their booking profile in conversation (link_identity_form).

Thin: the form asks for a booking number or phone (`link_claim`) and a second factor
(`link_proof`); both may come in one message. `bot.bookings.identity.IdentityLinker` checks
them, links, counts failures and locks; the texts are templates in bot/templates/bookings.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions._common import STORE_DOWN_TEXT, call
from actions._flows import intent_of, text_of
from bot.bookings.identity import Claim, parse_claim, parse_proof
from bot.bookings.texts import render
from bot.crm.store import CHINA_TZ, StoreUnavailable, china_today
from bot.services import get_services

FORM = "link_identity_form"
LINK_SLOTS = ("link_claim", "link_proof", "link_outcome")
HUMAN_BUTTON = {"title": "转人工", "payload": "/request_human"}


def _reset() -> List[Dict[Text, Any]]:
    return [SlotSet(name, None) for name in LINK_SLOTS]


class ValidateLinkIdentityForm(FormValidationAction):
    def name(self) -> Text:
        return f"validate_{FORM}"

    async def required_slots(
        self,
        domain_slots: List[Text],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: Dict[Text, Any],
    ) -> List[Text]:
        if tracker.get_slot("link_outcome"):  # linked or locked: the form ends
            return []
        return domain_slots

    async def extract_link_claim(self, dispatcher, tracker: Tracker, domain) -> Dict[Text, Any]:
        if tracker.get_slot("link_claim"):
            return {}
        claim = parse_claim(text_of(tracker))
        return {"link_claim": claim.to_slot()} if claim else {}

    async def extract_link_proof(self, dispatcher, tracker: Tracker, domain) -> Dict[Text, Any]:
        claim = Claim.from_slot(tracker.get_slot("link_claim"))
        fresh = claim is None
        if fresh:  # the claim may be in this very message ("订单号…，尾号…")
            claim = parse_claim(text_of(tracker))
        if claim is None:
            return {}
        text = text_of(tracker)
        if fresh:  # the claim's own digits are not its proof
            text = text.replace(claim.value, " ")
        proof = parse_proof(text, claim)
        return {"link_proof": proof} if proof else {}

    async def validate_link_claim(self, value, dispatcher, tracker, domain) -> Dict[Text, Any]:
        try:
            locked = await call(get_services().identity.locked_until, tracker.sender_id)
        except StoreUnavailable:
            dispatcher.utter_message(text=STORE_DOWN_TEXT)
            return {"link_claim": value, "link_outcome": "unavailable"}
        if locked is not None:
            return {"link_claim": value, "link_outcome": "locked"}
        return {"link_claim": value}

    async def validate_link_proof(self, value, dispatcher, tracker, domain) -> Dict[Text, Any]:
        claim = Claim.from_slot(tracker.get_slot("link_claim"))
        if claim is None or tracker.get_slot("link_outcome"):
            return {"link_proof": value}
        try:
            result = await call(get_services().identity.attempt, tracker.sender_id, claim, value)
        except StoreUnavailable:
            dispatcher.utter_message(text=STORE_DOWN_TEXT)
            return {"link_proof": value, "link_outcome": "unavailable"}
        if result.outcome == "mismatch":  # the same words whether or not the claim exists
            dispatcher.utter_message(text=render("mismatch", left=result.failures_left))
            return {"link_claim": None, "link_proof": None}
        return {"link_proof": value, "link_outcome": result.outcome}


class ActionAskLinkClaim(Action):
    def name(self) -> Text:
        return "action_ask_link_claim"

    async def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text=render("ask_claim"))
        return []


class ActionAskLinkProof(Action):
    def name(self) -> Text:
        return "action_ask_link_proof"

    async def run(self, dispatcher, tracker, domain):
        claim = Claim.from_slot(tracker.get_slot("link_claim"))
        dispatcher.utter_message(text=render("ask_proof", kind=claim.kind if claim else "booking"))
        return []


class ActionLinkSubmit(Action):
    """The form ended: linked (show the stays now answered for) or locked (offer a person)."""

    def name(self) -> Text:
        return "action_link_submit"

    async def run(self, dispatcher, tracker, domain):
        outcome = tracker.get_slot("link_outcome")
        services = get_services()
        if outcome == "linked":
            try:
                guest = await call(services.store.find_guest, tracker.sender_id)
                bookings = await call(
                    services.store.upcoming_bookings, tracker.sender_id, china_today()
                )
            except StoreUnavailable:
                dispatcher.utter_message(text=STORE_DOWN_TEXT)
                return _reset()
            stays = [
                {
                    "hotel": _hotel(services.kb, b.property_id),
                    "check_in": b.check_in,
                    "check_out": b.check_out,
                }
                for b in bookings
            ]
            dispatcher.utter_message(
                text=render("linked", name=guest.display_name if guest else None, stays=stays)
            )
        elif outcome == "locked":
            until = await call(services.identity.locked_until, tracker.sender_id)
            when = until.astimezone(CHINA_TZ).strftime("%H:%M") if until else "稍后"
            dispatcher.utter_message(text=render("link_locked", until=when), buttons=[HUMAN_BUTTON])
        return _reset()


def _hotel(kb, property_id: str) -> str:
    prop = kb.property(property_id)
    return prop.name if prop else property_id


class ActionLinkGiveUp(Action):
    """The guest would rather not (deny) or wants a person: the form ends, nothing linked."""

    def name(self) -> Text:
        return "action_link_give_up"

    async def run(self, dispatcher, tracker, domain):
        if intent_of(tracker) != "request_human":  # the handoff speaks for itself
            dispatcher.utter_message(text=render("link_given_up"))
        return [ActiveLoop(None), SlotSet("requested_slot", None), *_reset()]

"""A human on request (request_human, "转人工"), and after two misunderstood messages in a row.
Thin: `bot.handoff.HandoffService` writes the handoff and words the expected wait."""

from __future__ import annotations

from typing import Text

from rasa_sdk import Action
from rasa_sdk.events import SlotSet

from actions._flows import flows, write_or_queue
from bot.handoff import OP_REQUEST, consecutive_fallbacks

# How many misunderstood messages in a row bring a person in (SPEC: "low confidence twice").
FALLBACKS_BEFORE_HANDOFF = 2
FALLBACK_HANDOFF_LEAD = "抱歉，我还是没能理解您的意思，这就请人工顾问来帮您。"


async def hand_off(dispatcher, tracker, reason: str, lead_in: str | None = None) -> None:
    f = flows()
    await write_or_queue(
        dispatcher,
        f,
        f.handoff.request,
        tracker.sender_id,
        reason,
        lead_in=lead_in,
        down_lead=lead_in,
        queue=[(OP_REQUEST, tracker.sender_id, {"reason": reason})],
    )


class ActionRequestHuman(Action):
    def name(self) -> Text:
        return "action_request_human"

    async def run(self, dispatcher, tracker, domain):
        await hand_off(dispatcher, tracker, "request_human")
        return []


class ActionHandleFallback(Action):
    """nlu_fallback: the first time the rules say utter_default (fallback_route=rephrase); the
    second time in a row a person is brought in (fallback_route=handed_off)."""

    def name(self) -> Text:
        return "action_handle_fallback"

    async def run(self, dispatcher, tracker, domain):
        if consecutive_fallbacks(tracker.events) >= FALLBACKS_BEFORE_HANDOFF:
            await hand_off(dispatcher, tracker, "fallback", lead_in=FALLBACK_HANDOFF_LEAD)
            return [SlotSet("fallback_route", "handed_off")]
        return [SlotSet("fallback_route", "rephrase")]

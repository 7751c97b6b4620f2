"""Two things in one message (issue 17): after an answer action has answered the message's own
intent, the second request the NLU found (bot/nlu/second_request.py, `second_request` in the parse
result) is run next, or acknowledged when the first answer still waits for the guest."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

# What runs a second request of each intent.
FOLLOWUP = {
    "order_addon": "addon_order_form",
    "ask_weather": "action_answer_weather",
    "ask_packing": "action_answer_packing",
    "ask_checkout_time": "action_answer_checkout",
    "ask_checkin_time": "action_answer_checkin",
    "request_human": "action_request_human",
}
ORDER_LEAD = "另外，您提到“{clause}”，我接着帮您办："
WAIT_LEAD = "您提到的“{clause}”我记下了，先确认上面这个问题，再接着帮您办。"


def second_request(tracker, own_intent: str) -> Optional[Dict[str, Any]]:
    """The second request of the latest message, when the running action answered its intent
    (a follow-up action sees the same message and must not chain again)."""
    latest = tracker.latest_message or {}
    if ((latest.get("intent") or {}).get("name")) != own_intent:
        return None
    second = latest.get("second_request")
    if not isinstance(second, dict) or second.get("intent") not in FOLLOWUP:
        return None
    return second


def then_second_request(
    dispatcher: CollectingDispatcher, tracker, own_intent: str, waiting: bool = False
) -> List[Dict[Text, Any]]:
    """Events that run the second request next (or a short acknowledgement if `waiting`: the
    answer just given asked the guest something first)."""
    second = second_request(tracker, own_intent)
    if not second:
        return []
    clause = str(second.get("text") or "").strip()[:40]
    if waiting:
        dispatcher.utter_message(text=WAIT_LEAD.format(clause=clause))
        return []
    if second["intent"] == "order_addon":
        dispatcher.utter_message(text=ORDER_LEAD.format(clause=clause))
    return [FollowupAction(FOLLOWUP[second["intent"]])]

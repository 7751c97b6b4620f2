"""Complaints and praise. Thin: `bot.complaints.service.ComplaintService` classifies, writes the
ticket and words the replies.

    complain -> action_complaint_triage: empathy first and the ticket at once (its SLA clock
                starts with the first message); major incident or strong anger: + handoff
                (complaint_route=handed_off); otherwise who acts and by when, then
                complaint_route=ask_details and the complaint_form asks where / since when --
                only what is still unknown
    complaint_form done -> action_submit_complaint: the answers are added to that ticket
    request_human inside the form -> action_complaint_escalate: same ticket + handoff
"""

from __future__ import annotations

from typing import Any, Dict, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions._common import call
from actions._flows import flows, intent_of, replay_pending, text_of, write_or_queue
from bot.complaints.classifier import MAJOR
from bot.complaints.praise import OP_PRAISE
from bot.complaints.service import OP_ENRICH, OP_OPEN, ROUTE_DONE, Details
from bot.crm.store import StoreUnavailable
from bot.handoff import OP_REQUEST
from bot.replies import QUEUED_TEXT

DETAIL_SLOTS = (
    "complaint_text",
    "complaint_category",
    "complaint_nature",
    "complaint_location",
    "complaint_since",
)
# Not an answer to "where?" / "since when?": let the rules handle these.
NOT_AN_ANSWER = frozenset(
    {
        "request_human",
        "cancel_order",
        "order_addon",
        "ask_order_status",
        "unsubscribe",
        "request_data_deletion",
        "greet",
        "goodbye",
        "bot_challenge",
        "ask_weather",
        "ask_packing",
        "ask_itinerary",
        "ask_amenity",
        "ask_checkin_time",
        "ask_checkout_time",
        "ask_directions",
        "ask_emergency_contact",
    }
)
_DONT_KNOW = ("不知道", "不清楚", "不记得", "记不清", "忘了", "说不好")


def _details(tracker: Tracker) -> Details:
    return Details(
        text=tracker.get_slot("complaint_text") or text_of(tracker),
        category=tracker.get_slot("complaint_category"),
        nature=tracker.get_slot("complaint_nature"),
        location=tracker.get_slot("complaint_location"),
        since=tracker.get_slot("complaint_since"),
    )


class ActionComplaintTriage(Action):
    def name(self) -> Text:
        return "action_complaint_triage"

    async def run(self, dispatcher, tracker, domain):
        f = flows()
        text = text_of(tracker)
        await replay_pending(f)
        try:
            reply = await call(f.complaints.triage, tracker.sender_id, text)
        except StoreUnavailable:
            # queue the ticket (and the person, for a major incident or anger): the replay
            # opens them and the worker pages then
            c = f.complaints.classify(text)
            details = Details(text, c.category, c.nature, c.location, c.since)
            severity = MAJOR if c.severity == MAJOR else "routine"
            await call(
                f.queue, OP_OPEN, tracker.sender_id, **details.as_payload(), severity=severity
            )
            if severity == MAJOR or c.angry:
                reason = "major_incident" if severity == MAJOR else "anger"
                await call(f.queue, OP_REQUEST, tracker.sender_id, reason=reason)
            dispatcher.utter_message(text=c.empathy)
            if severity == MAJOR:
                dispatcher.utter_message(
                    text="如果有人受伤或有危险，请先拨打 120（急救）或 110（报警）。"
                )
            dispatcher.utter_message(text=QUEUED_TEXT)
            return [SlotSet("complaint_text", text), SlotSet("complaint_route", ROUTE_DONE)]
        for line in reply.texts:
            dispatcher.utter_message(text=line)
        return [SlotSet(k, v) for k, v in reply.slots.items()]


class ValidateComplaintForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_complaint_form"

    def _answer(self, tracker: Tracker, slot: str) -> str | None:
        if intent_of(tracker) in NOT_AN_ANSWER:
            return None
        text = text_of(tracker).strip()
        if not text:
            return None
        classifier = flows().complaints.classifier
        found = (
            classifier.location(text) if slot == "complaint_location" else classifier.since(text)
        )
        if found:
            return found
        if tracker.get_slot("requested_slot") == slot:
            if any(w in text for w in _DONT_KNOW):
                return "不清楚"
            return text[:64]
        return None

    async def extract_complaint_location(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if tracker.get_slot("complaint_location"):
            return {}
        value = self._answer(tracker, "complaint_location")
        return {"complaint_location": value} if value else {}

    async def extract_complaint_since(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if tracker.get_slot("complaint_since"):
            return {}
        value = self._answer(tracker, "complaint_since")
        return {"complaint_since": value} if value else {}

    async def validate_complaint_location(self, value: Any, dispatcher, tracker, domain):
        return {"complaint_location": str(value)[:128] if value else None}

    async def validate_complaint_since(self, value: Any, dispatcher, tracker, domain):
        return {"complaint_since": str(value)[:64] if value else None}


class ActionSubmitComplaint(Action):
    def name(self) -> Text:
        return "action_submit_complaint"

    async def run(self, dispatcher, tracker, domain):
        f = flows()
        details = _details(tracker)
        await write_or_queue(
            dispatcher,
            f,
            f.complaints.submit,
            tracker.sender_id,
            details,
            queue=[(OP_ENRICH, tracker.sender_id, details.as_payload())],
        )
        return [SlotSet(name, None) for name in DETAIL_SLOTS]


class ActionComplaintEscalate(Action):
    """The guest asked for a person before the complaint questions were done."""

    def name(self) -> Text:
        return "action_complaint_escalate"

    async def run(self, dispatcher, tracker, domain):
        f = flows()
        details = _details(tracker)
        await write_or_queue(
            dispatcher,
            f,
            f.complaints.escalate,
            tracker.sender_id,
            details,
            queue=[
                (OP_ENRICH, tracker.sender_id, details.as_payload()),
                (OP_REQUEST, tracker.sender_id, {"reason": "complaint"}),
            ],
        )
        return [
            ActiveLoop(None),
            SlotSet("requested_slot", None),
            *[SlotSet(name, None) for name in DETAIL_SLOTS],
        ]


class ActionRecordPraise(Action):
    def name(self) -> Text:
        return "action_record_praise"

    async def run(self, dispatcher, tracker, domain):
        f = flows()
        text = text_of(tracker)
        await write_or_queue(
            dispatcher,
            f,
            f.praise.record,
            tracker.sender_id,
            text,
            queue=[(OP_PRAISE, tracker.sender_id, {"text": text})],
        )
        return []


class ActionAskComplaintLocation(Action):
    def name(self) -> Text:
        return "action_ask_complaint_location"

    async def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(
            text="方便告诉我具体是在哪里吗？比如房间号或者哪个区域，方便同事尽快处理。"
        )
        return []


class ActionAskComplaintSince(Action):
    def name(self) -> Text:
        return "action_ask_complaint_since"

    async def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text="大概是从什么时候开始的？记不清也没关系，说个大概就好。")
        return []

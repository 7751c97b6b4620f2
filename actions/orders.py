"""Add-on orders: the `addon_order_form` (validation, questions, confirmation), submit, status,
cancel. Thin: the checks and wording live in `bot.orders.service.OrderService`.

Form slots (all custom-mapped, filled by the `extract_*` methods below from the guest's own text,
so everything said in one message is taken at once and nothing has to be said twice):
    addon_item      catalogue item id ("airport_pickup")
    order_when      ISO datetime once valid (a parsed dict for one moment before validation)
    party_size      int, asked only for items that need it
    flight_no       "CA1234", asked only for pickups/drop-offs
    order_confirm   True/False, asked last with the summary from bot/templates/orders/confirm.j2
Helpers set by validation: order_day (a day without a time yet), order_booking_id, order_notes,
order_stop_reason (the form cannot go on, e.g. no booking: it ends without an order).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions._common import STORE_DOWN_TEXT, call, say_private
from actions._flows import flows, reset, write_or_queue
from actions._flows import intent_of as _message_intent
from actions._flows import text_of as _message_text
from bot.crm.store import StoreUnavailable
from bot.orders.service import OP_CANCEL, OP_CREATE, Draft, parse_flight, parse_party
from bot.orders.when import CHINA_TZ, When, describe, find_when

FORM = "addon_order_form"
FIELDS = ("addon_item", "order_when", "party_size", "flight_no")
ORDER_SLOTS = FIELDS + (
    "order_confirm",
    "order_day",
    "order_booking_id",
    "order_notes",
    "order_stop_reason",
)
# Messages meant for the form: their content fills slots whatever slot was asked.
FORM_INTENTS = frozenset({"order_addon", "inform", "affirm", "deny", "nlu_fallback"})
# Messages that are about something else even when short: the form lets the rules answer them.
# (every ask_* intent too: the rules answer those questions and come back to the form)
NOT_FOR_THE_FORM = frozenset(
    {
        "cancel_order",
        "request_human",
        "complain",
        "inform_preference",
        "praise",
        "unsubscribe",
        "request_data_deletion",
        "greet",
        "goodbye",
        "thank",
        "bot_challenge",
    }
)
_YES = re.compile(
    r"^(确认|确定|好的?|好滴|可以|没问题|对|是的?|嗯+|ok|okay|行|下单吧?|就这样"
    r"|没有了|没了|就这些|没有别的了?|没有其他(?:需求|要求)?了?|没有特别要求|暂时没有)"
    r"[!！。.~～]*$",
    re.I,
)
_NO = re.compile(r"^(算了|不要了|不用了|取消|不订了|先不要?了?)[!！。.~～]*$")


def _order_part(tracker: Tracker) -> Optional[str]:
    """The order clause of a two-request message ("天气怎么样？顺便帮我订个接机") when the form
    runs as the follow-up of the answer (bot/nlu/second_request.py, actions/second_request.py)."""
    second = (tracker.latest_message or {}).get("second_request") or {}
    # Only the pre-trip answers (ask_* intents) run the form as a follow-up.
    if second.get("intent") == "order_addon" and (_message_intent(tracker) or "").startswith(
        "ask_"
    ):
        return str(second.get("text") or "") or None
    return None


def text_of(tracker: Tracker) -> str:
    """The message text the form reads: the order clause of a two-request message."""
    return _order_part(tracker) or _message_text(tracker)


def intent_of(tracker: Tracker) -> Optional[str]:
    return "order_addon" if _order_part(tracker) else _message_intent(tracker)


def _meant_for(tracker: Tracker, slot: str) -> bool:
    """Is the latest message content for this form slot (rather than a question aside)?"""
    intent = intent_of(tracker)
    if intent in FORM_INTENTS:
        return True
    if intent in NOT_FOR_THE_FORM or (intent or "").startswith("ask_"):
        return False
    # A short answer right after we asked for exactly this slot, whatever NLU thought it was.
    return tracker.get_slot("requested_slot") == slot and len(text_of(tracker)) <= 15


def _says_nothing_else(tracker: Tracker) -> bool:
    """The message fills no other slot ("改成3个人" while we wait for the flight number is a
    correction, not a malformed flight number)."""
    text = text_of(tracker).strip()
    if not text:
        return False
    orders = flows().orders
    return (
        parse_party(text) is None
        and find_when(text, orders.now()) is None
        and orders.catalogue.find_item(text) is None
        and parse_flight(text) is None
    )


def _when_payload(when: When) -> dict:
    return {
        "at": when.at.isoformat(),
        "has_time": when.has_time,
        "has_day": when.has_day,
        "text": when.text,
    }


def _when_from_payload(value: dict) -> When:
    return When(
        at=dt.datetime.fromisoformat(value["at"]),
        has_time=bool(value["has_time"]),
        has_day=bool(value["has_day"]),
        text=value.get("text") or "",
    )


def _draft(tracker: Tracker) -> Draft:
    booking_id = tracker.get_slot("order_booking_id")
    party = tracker.get_slot("party_size")
    return Draft(
        item_id=tracker.get_slot("addon_item"),
        at=tracker.get_slot("order_when"),
        party=int(party) if party is not None else None,
        flight_no=tracker.get_slot("flight_no"),
        notes=tracker.get_slot("order_notes"),
        booking_id=int(booking_id) if booking_id is not None else None,
    )


class ValidateAddonOrderForm(FormValidationAction):
    def name(self) -> Text:
        return f"validate_{FORM}"

    async def required_slots(
        self,
        domain_slots: List[Text],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> List[Text]:
        if tracker.get_slot("order_stop_reason"):
            return []  # the form ends here, without an order
        item = flows().orders.item(tracker.get_slot("addon_item"))
        slots = ["addon_item", "order_when"]
        if item is None or "party" in item.needs:
            slots.append("party_size")
        if item is None or "flight" in item.needs:
            slots.append("flight_no")
        return slots + ["order_confirm"]

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> List[Dict[Text, Any]]:
        asked = tracker.get_slot("requested_slot")
        events = await super().run(dispatcher, tracker, domain)
        # At the confirmation, words that are neither yes/no nor a change are a note for the
        # order ("需要一个儿童座椅"): keep them, show the summary again.
        changed = any(
            e.get("name") in FIELDS + ("order_confirm",) for e in events if e.get("event") == "slot"
        )
        text = text_of(tracker).strip()
        if (
            asked == "order_confirm"
            and not changed
            and text
            and intent_of(tracker) in FORM_INTENTS - {"affirm", "deny"}
        ):
            notes = tracker.get_slot("order_notes")
            events.append(SlotSet("order_notes", f"{notes}；{text}" if notes else text))
        return events

    # ---- item --------------------------------------------------------------------------------
    async def extract_addon_item(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if not _meant_for(tracker, "addon_item"):
            return {}
        orders = flows().orders
        hinted = next(tracker.get_latest_entity_values("addon_item"), None)
        if hinted in orders.catalogue.items:
            return {"addon_item": hinted}
        item = orders.catalogue.find_item(text_of(tracker))
        if item is not None:
            return {"addon_item": item.id}
        if tracker.get_slot("requested_slot") == "addon_item" and _says_nothing_else(tracker):
            return {"addon_item": text_of(tracker).strip()}  # validation says what we offer
        return {}

    async def validate_addon_item(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        orders = flows().orders
        check = await call(
            orders.check_item,
            tracker.sender_id,
            str(value),
            booking_id=tracker.get_slot("order_booking_id"),
        )
        if check.message:
            dispatcher.utter_message(text=check.message)
        if check.stop:
            return {"addon_item": None, "order_stop_reason": "no_booking"}
        if not check.ok:
            return {"addon_item": None}
        result: Dict[Text, Any] = {"addon_item": check.value, "order_confirm": None}
        at = tracker.get_slot("order_when")
        if isinstance(at, str):  # a time given before the item: check it against this item
            when = When(at=dt.datetime.fromisoformat(at), has_time=True, has_day=True, text="")
            again = await call(orders.check_when, tracker.sender_id, check.value, when)
            if not again.ok:
                if again.message:
                    dispatcher.utter_message(text=again.message)
                result["order_when"] = None
            result.update({k: v for k, v in again.slots.items() if k != "order_day" or v})
        return result

    # ---- date and time ----------------------------------------------------------------------
    async def extract_order_when(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if not _meant_for(tracker, "order_when"):
            return {}
        when = await call(find_when, text_of(tracker), flows().orders.now())
        if when is None:
            return {}
        return {"order_when": _when_payload(when)}

    async def validate_order_when(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if not isinstance(value, dict):
            return {"order_when": value}  # already validated on an earlier turn
        orders = flows().orders
        known_day = tracker.get_slot("order_day")
        item_id = tracker.get_slot("addon_item")
        check = await call(
            orders.check_when,
            tracker.sender_id,
            item_id if item_id in orders.catalogue.items else None,
            _when_from_payload(value),
            known_day=dt.date.fromisoformat(known_day) if known_day else None,
            booking_id=tracker.get_slot("order_booking_id"),
        )
        if check.message:
            dispatcher.utter_message(text=check.message)
        return {"order_when": check.value, "order_confirm": None, **check.slots}

    # ---- party ------------------------------------------------------------------------------
    async def extract_party_size(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if not _meant_for(tracker, "party_size"):
            return {}
        asked = tracker.get_slot("requested_slot") == "party_size"
        size = parse_party(text_of(tracker), bare_number=asked)
        if size is None:
            hinted = next(tracker.get_latest_entity_values("party_size"), None)
            size = parse_party(str(hinted), bare_number=True) if hinted else None
        return {"party_size": size} if size is not None else {}

    async def validate_party_size(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        check = await call(
            flows().orders.check_party,
            tracker.get_slot("addon_item"),
            value,
            booking_id=tracker.get_slot("order_booking_id"),
            sender_id=tracker.sender_id,
        )
        if check.message:
            dispatcher.utter_message(text=check.message)
        return {"party_size": check.value, "order_confirm": None}

    # ---- flight -----------------------------------------------------------------------------
    async def extract_flight_no(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if not _meant_for(tracker, "flight_no"):
            return {}
        flight = parse_flight(text_of(tracker))
        if flight is None:
            hinted = next(tracker.get_latest_entity_values("flight_no"), None)
            flight = parse_flight(str(hinted)) if hinted else None
        if (
            flight is None
            and tracker.get_slot("requested_slot") == "flight_no"
            and _says_nothing_else(tracker)
        ):
            return {"flight_no": text_of(tracker).strip()}  # validation explains the format
        return {"flight_no": flight} if flight else {}

    async def validate_flight_no(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        check = flows().orders.check_flight(value)
        if check.message:
            dispatcher.utter_message(text=check.message)
        return {"flight_no": check.value, "order_confirm": None}

    # ---- confirmation -----------------------------------------------------------------------
    async def extract_order_confirm(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        if tracker.get_slot("requested_slot") != "order_confirm":
            return {}
        intent, text = intent_of(tracker), text_of(tracker).strip()
        if intent == "affirm" or _YES.match(text):
            return {"order_confirm": True}
        if intent in ("deny", "cancel_order") or _NO.match(text):
            return {"order_confirm": False}
        return {}

    async def validate_order_confirm(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Dict[Text, Any]:
        return {"order_confirm": bool(value) if value is not None else None}


class ActionAskAddonItem(Action):
    def name(self) -> Text:
        return "action_ask_addon_item"

    async def run(self, dispatcher, tracker, domain):
        orders = flows().orders
        bookings = await call(orders.bookings, tracker.sender_id)
        if bookings:
            prop = bookings[0].property_id
            dispatcher.utter_message(
                text=f"请问您想预订哪项服务？{orders.property_name(prop)}可以预订："
                f"{orders.menu(prop)}。"
            )
        else:
            dispatcher.utter_message(
                text="请问您想预订哪项服务？比如接机、送机、SPA、延迟退房、餐厅订位。"
            )
        return []


_WHEN_QUESTIONS = {
    "airport_pickup": "请问航班哪天几点落地？接机按落地时间安排。",
    "airport_dropoff": "请问哪天几点从酒店出发去机场/车站？",
    "late_checkout": "请问想延迟到哪天几点退房？",
}


class ActionAskOrderWhen(Action):
    def name(self) -> Text:
        return "action_ask_order_when"

    async def run(self, dispatcher, tracker, domain):
        day = tracker.get_slot("order_day")
        item = flows().orders.item(tracker.get_slot("addon_item"))
        if day:
            start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), CHINA_TZ)
            text = f"{describe(start, with_time=False)}几点呢？"
        elif item is not None and item.id in _WHEN_QUESTIONS:
            text = _WHEN_QUESTIONS[item.id]
        else:
            name = item.name if item is not None else "这项服务"
            text = f"请问{name}安排在哪天几点？比如“明天下午三点”。"
        dispatcher.utter_message(text=text)
        return []


class ActionAskOrderConfirm(Action):
    def name(self) -> Text:
        return "action_ask_order_confirm"

    async def run(self, dispatcher, tracker, domain):
        text = await call(flows().orders.confirmation_question, _draft(tracker), tracker.sender_id)
        dispatcher.utter_message(text=text)
        return []


class ActionSubmitOrder(Action):
    def name(self) -> Text:
        return "action_submit_order"

    async def run(self, dispatcher, tracker, domain):
        events = reset(ORDER_SLOTS)
        if tracker.get_slot("order_stop_reason"):
            return events  # validation already told the guest why
        if tracker.get_slot("order_confirm") is not True:
            dispatcher.utter_message(text="好的，这单先不提交了。需要的时候随时告诉我。")
            return events
        f = flows()
        draft = _draft(tracker)
        await write_or_queue(
            dispatcher,
            f,
            f.orders.create,
            tracker.sender_id,
            draft,
            queue=[(OP_CREATE, tracker.sender_id, draft.to_payload())],
        )
        return events


class ActionCancelOrderForm(Action):
    """The guest gave up in the middle of the form (or turned to a complaint or a person):
    nothing was ordered, and the half-filled order is forgotten."""

    def name(self) -> Text:
        return "action_cancel_order_form"

    async def run(self, dispatcher, tracker, domain):
        # A complaint interrupting the form is answered with empathy first: nothing said here.
        if intent_of(tracker) != "complain":
            dispatcher.utter_message(
                text="好的，这单先不订了，没有为您下单。还有其他需要随时告诉我。"
            )
        return [ActiveLoop(None), SlotSet("requested_slot", None), *reset(ORDER_SLOTS)]


class ActionOrderStatus(Action):
    def name(self) -> Text:
        return "action_order_status"

    async def run(self, dispatcher, tracker, domain):
        try:
            reply = await call(flows().orders.status, tracker.sender_id)
        except StoreUnavailable:
            dispatcher.utter_message(text=STORE_DOWN_TEXT)
            return []
        say_private(dispatcher, tracker, reply)  # a guest's orders are not for the whole group
        return []


class ActionCancelOrder(Action):
    def name(self) -> Text:
        return "action_cancel_order"

    async def run(self, dispatcher, tracker, domain):
        f = flows()
        text = text_of(tracker)
        await write_or_queue(
            dispatcher,
            f,
            f.orders.cancel,
            tracker.sender_id,
            text,
            queue=[(OP_CANCEL, tracker.sender_id, {"text": text})],
        )
        return []


class ActionAskPartySize(Action):
    def name(self) -> Text:
        return "action_ask_party_size"

    async def run(self, dispatcher, tracker, domain):
        item = flows().orders.item(tracker.get_slot("addon_item"))
        name = item.name if item is not None else "这项服务"
        dispatcher.utter_message(text=f"{name}一共几位呢？")
        return []


class ActionAskFlightNo(Action):
    def name(self) -> Text:
        return "action_ask_flight_no"

    async def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(
            text="请发一下航班号（坐高铁的话发车次），比如 CA1234，" "方便司机掌握您的到达时间。"
        )
        return []

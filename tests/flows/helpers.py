"""Trackers built from events and a small driver that plays a form the way Rasa does: run the
validation action, apply its events, ask for the next slot, until the form is done."""

from __future__ import annotations

import functools
from typing import Any, Optional

import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.settings import PROJECT_ROOT
from bot.sla_terms import SlaTerms


def promised(sla_class: str, property_id: str | None = "sanya-haitang-resort") -> list[str]:
    """The durations the guest must be told for this class, as the SLA policy in force has them
    (the policy is data other people tune: tests read it rather than hard-code 10分钟)."""
    promise = SlaTerms().promise(sla_class, property_id)
    return [t for t in (promise.ack_text, promise.resolve_text) if t]


@functools.lru_cache(maxsize=1)
def domain() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))


def user_event(text: str, intent: str, entities: Optional[list] = None) -> dict:
    return {
        "event": "user",
        "text": text,
        "parse_data": {
            "text": text,
            "intent": {"name": intent, "confidence": 0.95},
            "entities": entities or [],
        },
    }


def tracker(
    sender: str,
    text: str,
    intent: str,
    *,
    slots: Optional[dict] = None,
    events: Optional[list] = None,
    entities: Optional[list] = None,
    active_loop: Optional[str] = None,
) -> Tracker:
    latest = user_event(text, intent, entities)
    return Tracker(
        sender_id=sender,
        slots=dict(slots or {}),
        latest_message=latest["parse_data"],
        events=list(events or []) + [latest],
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


async def run(action, t: Tracker) -> tuple[list[str], list[dict]]:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, domain())
    return [m.get("text") or m.get("response") for m in dispatcher.messages], events


def slot_events(events: list[dict]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


class FormPlayer:
    """Plays one guest through a form: each `say` runs the validation action on the guest's
    message (as Rasa's FormAction does), then the ask action of the slot it requests."""

    def __init__(self, sender: str, form: str, validator, ask_actions: dict):
        self.sender = sender
        self.form = form
        self.validator = validator
        self.ask_actions = ask_actions
        self.slots: dict[str, Any] = {}
        self.events: list[dict] = []
        self.said: list[str] = []  # everything the bot said, in order
        self.active = True

    async def say(self, text: str, intent: str, entities: Optional[list] = None) -> list[str]:
        t = tracker(
            self.sender,
            text,
            intent,
            slots=self.slots,
            events=self.events,
            entities=entities,
            active_loop=self.form if self.active else None,
        )
        messages, events = await run(self.validator, t)
        self.events.append(user_event(text, intent, entities))
        self.slots.update(slot_events(events))
        self.last_events = events
        if "requested_slot" not in slot_events(events):
            # the validation action left it to Rasa: the next empty slot of the domain's list
            required = domain()["forms"][self.form]["required_slots"]
            self.slots["requested_slot"] = next(
                (s for s in required if self.slots.get(s) is None), None
            )
        asked = self.slots.get("requested_slot")
        if asked and asked in self.ask_actions:
            more, _ = await run(self.ask_actions[asked], self._tracker())
            messages += more
        elif asked is None:
            self.active = False
        self.said += messages
        return messages

    def _tracker(self) -> Tracker:
        return Tracker(
            sender_id=self.sender,
            slots=dict(self.slots),
            latest_message={},
            events=list(self.events),
            paused=False,
            followup_action=None,
            active_loop={"name": self.form} if self.active else {},
            latest_action_name=self.form,
        )

    def filled(self, names) -> bool:
        return all(self.slots.get(n) is not None for n in names)

    async def run_action(self, action) -> tuple[list[str], list[dict]]:
        messages, events = await run(action, self._tracker())
        self.slots.update(slot_events(events))
        self.said += messages
        return messages, events

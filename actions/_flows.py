"""What the guest-side flow actions (preferences, orders, complaints, human, privacy) share:
write through a service, or queue the write durably when the CRM is down and tell the guest we
will follow up; replay what was queued as soon as the CRM answers again."""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions._common import STORE_DOWN_TEXT, call, say
from bot.crm.store import StoreUnavailable
from bot.flows import Flows
from bot.replies import QUEUED_TEXT, Reply
from bot.services import get_services

log = logging.getLogger(__name__)


def flows() -> Flows:
    return get_services().flows


def text_of(tracker: Tracker) -> str:
    return (tracker.latest_message or {}).get("text") or ""


def intent_of(tracker: Tracker) -> Optional[str]:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name")


async def replay_pending(f: Flows) -> None:
    """Opportunistic: a write queued earlier goes in before this turn's write."""
    try:
        applied = await call(f.replay_pending)
        if applied:
            log.info("replayed %d queued CRM write(s)", applied)
    except Exception:  # never let the backlog break the current conversation
        log.exception("replaying the spool failed")


async def write_or_queue(
    dispatcher: CollectingDispatcher,
    f: Flows,
    fn: Callable[..., Reply],
    *args: Any,
    queue: Iterable[tuple[str, str, dict]],
    down_lead: Optional[str] = None,
    **kwargs: Any,
) -> Optional[Reply]:
    """Run a writing service call and say its reply. If the CRM is unavailable, put every
    (op, sender_id, payload) of `queue` in the spool and say we will follow up (after
    `down_lead`, e.g. the empathy sentence). Returns the reply, or None when queued."""
    await replay_pending(f)
    try:
        reply = await call(fn, *args, **kwargs)
    except StoreUnavailable as exc:
        log.error("CRM unavailable, queueing: %s", exc)
        try:
            for op, sender_id, payload in queue:
                await call(f.queue, op, sender_id, **payload)
        except Exception:  # the spool failed too: at least do not pretend it is kept
            log.exception("could not queue the write either")
            if down_lead:
                dispatcher.utter_message(text=down_lead)
            dispatcher.utter_message(text=STORE_DOWN_TEXT)
            return None
        if down_lead:
            dispatcher.utter_message(text=down_lead)
        dispatcher.utter_message(text=QUEUED_TEXT)
        return None
    say(dispatcher, reply)
    return reply


def reset(names: Iterable[str]) -> list:
    return [SlotSet(name, None) for name in names]

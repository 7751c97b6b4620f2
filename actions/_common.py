"""What every action shares: run a blocking service call off the event loop, and turn a
service `Reply` into dispatcher messages."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Callable, TypeVar

from rasa_sdk.executor import CollectingDispatcher

from bot.crm.store import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# Said when the CRM cannot be reached: honest, and it promises only what the handoff delivers.
STORE_DOWN_TEXT = (
    "抱歉，系统暂时查不到您的信息，请稍后再试；着急的话请说“转人工”，顾问会直接帮您处理。"
)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a synchronous service call (SQLAlchemy, requests) in a worker thread."""
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


def say(dispatcher: CollectingDispatcher, reply) -> None:
    texts = list(reply.texts)
    for text in texts[:-1]:
        dispatcher.utter_message(text=text)
    if texts:
        dispatcher.utter_message(text=texts[-1], buttons=list(reply.buttons) or None)


def in_group(tracker) -> bool:
    """The guest wrote in a customer group (智能机器人 group chat)."""
    metadata = (getattr(tracker, "latest_message", None) or {}).get("metadata") or {}
    return (metadata.get("wecom") or {}).get("chattype") == "group"


def say_private(dispatcher: CollectingDispatcher, tracker, reply) -> None:
    """Say a reply about the guest's own bookings / orders; in a group it is marked private,
    and the WeCom channel delivers it to the guest alone (bot/wecom/surfaces/group_privacy.py)."""
    if not in_group(tracker):
        say(dispatcher, reply)
        return
    for text in reply.texts:
        dispatcher.utter_message(json_message={"private": True, "text": text})


def store_down(dispatcher: CollectingDispatcher, exc: StoreUnavailable) -> list:
    log.error("CRM store unavailable: %s", exc)
    dispatcher.utter_message(text=STORE_DOWN_TEXT)
    return []

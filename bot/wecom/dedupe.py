"""Dedupe keys for WeCom callbacks, and a fast "seen" marker in front of the durable inbox.

WeCom retries a callback up to 3 times when it gets no 200 within 5 s. Messages carry a MsgId;
events do not, so their key is FromUserName + CreateTime + Event + the fields that tell two events
apart (per WeCom's advice). The inbox table's unique key is what really guarantees "once"; the
marker here only saves a database round trip for retries and is set *after* the message is stored,
so a failed store can never hide a message from WeCom's next retry.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional

EVENT_DISTINGUISHING_FIELDS = (
    "EventKey",
    "ChangeType",
    "ExternalUserID",
    "UserID",
    "ChatId",
    "State",
    "WelcomeCode",
    "TaskId",
    "OpenKfId",
    "Token",
    "JobId",
    "Status",
)


def _digest(*parts: Any) -> str:
    raw = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()


def xml_callback_key(surface: str, message: Mapping[str, Any]) -> str:
    """App/kf XML callback: msgid for messages; sender+time+event(+fields) for events."""
    msg_id = message.get("MsgId")
    if msg_id:
        return f"{surface}:msg:{msg_id}"
    extra = [message.get(f) for f in EVENT_DISTINGUISHING_FIELDS]
    return f"{surface}:evt:" + _digest(
        message.get("FromUserName"), message.get("CreateTime"), message.get("Event"), *extra
    )


def kf_msgid_key(msgid: str) -> str:
    return f"kf:msg:{msgid}"


def kf_message_key(msg: Mapping[str, Any]) -> str:
    """微信客服 sync_msg items all carry a msgid (events too)."""
    msgid = msg.get("msgid")
    if msgid:
        return kf_msgid_key(str(msgid))
    event: Dict[str, Any] = msg.get("event") or {}
    return "kf:evt:" + _digest(
        msg.get("send_time"),
        event.get("event_type"),
        event.get("external_userid"),
        event.get("open_kfid"),
        event.get("welcome_code"),
        event.get("fail_msgid"),
    )


def aibot_key(msg: Mapping[str, Any]) -> str:
    msgid = msg.get("msgid")
    if msgid:
        return f"aibot:msg:{msgid}"
    sender = (msg.get("from") or {}).get("userid")
    event = msg.get("event") or {}
    return "aibot:evt:" + _digest(
        sender,
        msg.get("chatid"),
        msg.get("create_time"),
        event.get("eventtype"),
        msg.get("msgtype"),
    )


class MemoryDeduper:
    """Bounded LRU of recently seen keys (process-local)."""

    def __init__(self, max_items: int = 50_000) -> None:
        self._seen: "OrderedDict[str, float]" = OrderedDict()
        self.max_items = max_items

    async def seen(self, key: str) -> bool:
        expires = self._seen.get(key)
        if expires is None:
            return False
        if expires < time.monotonic():
            self._seen.pop(key, None)
            return False
        return True

    async def mark(self, key: str, ttl: float = 3600) -> None:
        self._seen[key] = time.monotonic() + ttl
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_items:
            self._seen.popitem(last=False)


class RedisDeduper:
    def __init__(self, redis, prefix: str = "concierge:wecom:seen") -> None:
        self.redis = redis
        self.prefix = prefix

    async def seen(self, key: str) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}:{key}"))

    async def mark(self, key: str, ttl: float = 3600) -> None:
        await self.redis.set(f"{self.prefix}:{key}", 1, ex=int(ttl))


def make_deduper(redis=None):
    return RedisDeduper(redis) if redis is not None else MemoryDeduper()


def short_id(payload: str, length: int = 20) -> str:
    """A stable short id (for menu ids, outbound msgids) that fits WeCom's [0-9a-zA-Z_-] rule."""
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:length]


def optional_str(value: Optional[Any]) -> Optional[str]:
    return None if value is None else str(value)

"""The self-built app (自建应用): advisors' messages in, pages and notices out.

Inbound staff messages are handed to whoever registered with `register_app_handler` (the paging
code: "ack 123", "接管", ...). A handler gets an `AppMessage` and returns True when it handled it;
if none does, the advisor gets a short notice. A handler that raises leaves the message in the
inbox for a retry.

Outbound: `send_app_text` / `send_app_textcard` (message/send) with WeCom's per-member limits
(30/min, 1000/h per app: beyond that WeCom silently drops, so we hold back instead).
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Union

from wechatpy.enterprise import parse_message

from bot.wecom.client import SendResult
from bot.wecom.dedupe import xml_callback_key
from bot.wecom.errors import MalformedCallback
from bot.wecom.inbox import Inbound
from bot.wecom.messages import (
    APP_TEXT_MAX_BYTES,
    TEXTCARD_DESC_MAX_BYTES,
    TEXTCARD_TITLE_MAX_BYTES,
    split_utf8,
    truncate_utf8,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppMessage:
    """What an app handler receives."""

    userid: str
    msgtype: str  # text, image, voice, location, link, event, ...
    text: Optional[str] = None
    event: Optional[str] = None  # e.g. click, enter_agent, template_card_event
    event_key: Optional[str] = None
    agent_id: Optional[str] = None
    msgid: Optional[str] = None
    create_time: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict)

    @property
    def sender_id(self) -> str:
        return sender_id_for(self.userid)


AppHandler = Callable[[AppMessage], Union[bool, None, Awaitable[Optional[bool]]]]
_handlers: List[AppHandler] = []


def register_app_handler(handler: AppHandler) -> AppHandler:
    """Register a callable (sync or async) for staff messages; usable as a decorator."""
    if handler not in _handlers:
        _handlers.append(handler)
    return handler


def unregister_app_handler(handler: AppHandler) -> None:
    if handler in _handlers:
        _handlers.remove(handler)


def app_handlers() -> List[AppHandler]:
    return list(_handlers)


async def dispatch_app_message(message: AppMessage) -> bool:
    """Offer the message to each handler in order; True once one of them handled it."""
    for handler in list(_handlers):
        result = handler(message)
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
    return False


def sender_id_for(userid: str) -> str:
    return f"wecom:{userid}"


def normalize(xml_text: str, raw: Dict[str, Any]) -> Inbound:
    """Decrypted app callback XML -> inbox row (parsed with wechatpy's enterprise parser)."""
    try:
        msg = parse_message(xml_text)
    except Exception:
        raise MalformedCallback("not a WeCom app message") from None
    userid = raw.get("FromUserName")
    if not userid:
        raise MalformedCallback("no FromUserName")
    msgtype = str(raw.get("MsgType") or getattr(msg, "type", "unknown")).lower()
    payload: Dict[str, Any] = {
        "surface": "app", "msgtype": msgtype, "userid": userid, "msgid": raw.get("MsgId"),
        "agent_id": raw.get("AgentID"), "create_time": raw.get("CreateTime"), "raw": raw,
    }
    if msgtype == "text":
        payload["text"] = str(raw.get("Content") or "")
        kind = "text"
    elif msgtype == "event":
        payload["event"] = str(raw.get("Event") or "").lower()
        payload["event_key"] = raw.get("EventKey")
        kind = f"event:{payload['event'] or 'unknown'}"
    else:
        kind = msgtype
    return Inbound(dedupe_key=xml_callback_key("app", raw), surface="app", sender_id=sender_id_for(userid),
                   kind=kind[:32], payload=payload)


def app_message_from_payload(payload: Dict[str, Any]) -> AppMessage:
    create_time = payload.get("create_time")
    try:
        create_time = int(create_time) if create_time is not None else None
    except (TypeError, ValueError):
        create_time = None
    return AppMessage(userid=payload.get("userid") or "", msgtype=payload.get("msgtype") or "unknown",
                      text=payload.get("text"), event=payload.get("event"), event_key=payload.get("event_key"),
                      agent_id=payload.get("agent_id"), msgid=payload.get("msgid"), create_time=create_time,
                      raw=payload.get("raw") or {})


class AppService:
    def __init__(self, services) -> None:
        self.s = services

    def _limiter_keys(self, touser: str) -> tuple:
        agent = self.s.config.app_agent_id
        return tuple(f"app:{agent}:{u}" for u in touser.split("|") if u)

    async def _send(self, touser: str, message: Dict[str, Any], dedupe_key: Optional[str]) -> SendResult:
        if self.s.app_client is None or not self.s.config.app_agent_id:
            logger.error("app message to %s not sent: WECOM_APP_SECRET / WECOM_APP_AGENT_ID not set", touser)
            await self.s.outbox.begin("app", "/cgi-bin/message/send", message, sender_id_for(touser), dedupe_key,
                                      status="dead")
            return SendResult("dead")
        # No enable_duplicate_check: WeCom would silently drop a legitimate repeat (an escalation
        # with the same text); repeats of the *same* send are stopped by the outbox dedupe key.
        body: Dict[str, Any] = {"touser": touser, "agentid": int(self.s.config.app_agent_id), **message}
        return await self.s.app_client.send(
            "/cgi-bin/message/send", body, recipient=sender_id_for(touser), dedupe_key=dedupe_key,
            limiter=self.s.app_limiter, limiter_keys=self._limiter_keys(touser),
        )

    async def send_text(self, userid: str, text: str, *, dedupe_key: Optional[str] = None) -> SendResult:
        parts = split_utf8(text, APP_TEXT_MAX_BYTES)
        result: Optional[SendResult] = None
        for i, part in enumerate(parts):
            key = dedupe_key if (dedupe_key is None or len(parts) == 1) else f"{dedupe_key}:{i}"
            outcome = await self._send(userid, {"msgtype": "text", "text": {"content": part}}, key)
            if result is None or (result.ok and not outcome.ok):
                result = outcome  # report the first failure, else the last success
        return result

    async def send_voice(self, userid: str, media_id: str, *,
                         dedupe_key: Optional[str] = None) -> SendResult:
        """A voice message (an app media_id from media/upload, AMR) to an advisor."""
        return await self._send(userid, {"msgtype": "voice", "voice": {"media_id": media_id}},
                                dedupe_key)

    async def send_textcard(self, userid: str, title: str, description: str, url: str, btntxt: str = "详情",
                            *, dedupe_key: Optional[str] = None) -> SendResult:
        card = {"title": truncate_utf8(title, TEXTCARD_TITLE_MAX_BYTES),
                "description": truncate_utf8(description, TEXTCARD_DESC_MAX_BYTES),
                "url": url, "btntxt": (btntxt or "详情")[:4]}
        return await self._send(userid, {"msgtype": "textcard", "textcard": card}, dedupe_key)


async def send_app_text(userid: str, text: str, *, dedupe_key: Optional[str] = None, services=None) -> SendResult:
    """Send an advisor (WeCom userid; "a|b" for several) a text through the app. Long texts are
    split at 2048 bytes. `dedupe_key` (e.g. "page:42:ack") makes a repeat a no-op."""
    from bot.wecom.services import get_services

    return await (services or get_services()).app.send_text(userid, text, dedupe_key=dedupe_key)


async def send_app_textcard(userid: str, title: str, description: str, url: str, btntxt: str = "详情", *,
                            dedupe_key: Optional[str] = None, services=None) -> SendResult:
    """A text card (title ≤128 bytes, description ≤512 bytes, link + button) to an advisor."""
    from bot.wecom.services import get_services

    return await (services or get_services()).app.send_textcard(userid, title, description, url, btntxt,
                                                                 dedupe_key=dedupe_key)

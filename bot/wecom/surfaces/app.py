"""The self-built app (自建应用): advisors' messages in, pages and notices out.

Inbound staff messages are offered to the `AppCommandRouter` the process' composition root gave
the channel (the paging commands: "接单 123", "接管", ...). A handler gets an `AppMessage` and
returns True when it handled it; if none does, the advisor gets a short notice. A handler that
raises leaves the message in the inbox for a retry.

Outbound: `AppService.send_text` / `send_textcard` (message/send) with WeCom's per-member limits
(30/min, 1000/h per app: beyond that WeCom silently drops, so we hold back instead), and on
request WeCom's duplicate check (`duplicate_check_s`: pages, whose re-send after an unknown
outcome must not reach the advisor twice).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Tuple, Union

from wechatpy.enterprise import parse_message

from bot.wecom.api.client import SendResult
from bot.wecom.dedupe import xml_callback_key
from bot.wecom.errors import MalformedCallback
from bot.wecom.delivery.inbox import Inbound
from bot.wecom.protocol import AppMessage, Kind, KindClass, SendStatus
from bot.wecom.sender import wecom_sender
from bot.wecom.messages import (
    APP_TEXT_MAX_BYTES,
    TEXTCARD_DESC_MAX_BYTES,
    TEXTCARD_TITLE_MAX_BYTES,
    split_utf8,
    truncate_utf8,
)

logger = logging.getLogger(__name__)


AppHandler = Callable[[AppMessage], Union[bool, None, Awaitable[Optional[bool]]]]


class AppCommandRouter:
    """Advisors' messages offered to each command handler in turn (the paging commands: 接单,
    接管, ...). The process' composition root builds one and hands it to the WeCom channel; a
    handler returns True when it handled the message."""

    def __init__(self, handlers: Iterable[AppHandler] = ()) -> None:
        self._handlers: List[AppHandler] = list(handlers)

    def add(self, handler: AppHandler) -> AppHandler:
        if handler not in self._handlers:
            self._handlers.append(handler)
        return handler

    def remove(self, handler: AppHandler) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    def __len__(self) -> int:
        return len(self._handlers)

    async def dispatch(self, message: AppMessage) -> bool:
        """True once a handler handled the message; a handler that raises leaves it for a retry."""
        for handler in list(self._handlers):
            result = handler(message)
            if inspect.isawaitable(result):
                result = await result
            if result:
                return True
        return False


def sender_id_for(userid: str) -> str:
    return wecom_sender(userid)


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
    common: Dict[str, Any] = dict(
        userid=str(userid),
        msgtype=msgtype,
        msgid=raw.get("MsgId"),
        agent_id=raw.get("AgentID"),
        create_time=raw.get("CreateTime"),
        raw=raw,
    )
    if msgtype == "text":
        message = AppMessage(**common, text=str(raw.get("Content") or ""))
        kind = Kind(KindClass.MESSAGE, "text")
    elif msgtype == "event":
        event = str(raw.get("Event") or "").lower()
        message = AppMessage(**common, event=event, event_key=raw.get("EventKey"))
        kind = Kind.event(event or "unknown")
    else:
        message = AppMessage(**common)
        kind = Kind(KindClass.MESSAGE, msgtype)
    return Inbound.of(xml_callback_key("app", raw), message, kind)


def app_message_from_payload(payload: Dict[str, Any]) -> AppMessage:
    return AppMessage.from_payload(payload)


class AppService:
    def __init__(self, services) -> None:
        self.s = services

    def limiter_keys(self, touser: str) -> Tuple[str, ...]:
        agent = self.s.config.app_agent_id
        return tuple(f"app:{agent}:{u}" for u in touser.split("|") if u)

    async def _send(
        self,
        touser: str,
        message: Dict[str, Any],
        dedupe_key: Optional[str],
        duplicate_check_s: Optional[int] = None,
    ) -> SendResult:
        if self.s.app_client is None or not self.s.config.app_agent_id:
            logger.error(
                "app message to %s not sent: WECOM_APP_SECRET / WECOM_APP_AGENT_ID not set", touser
            )
            await self.s.outbox.begin(
                "app",
                "/cgi-bin/message/send",
                message,
                sender_id_for(touser),
                dedupe_key,
                status=SendStatus.DEAD.value,
            )
            return SendResult(SendStatus.DEAD.value)
        body: Dict[str, Any] = {
            "touser": touser,
            "agentid": int(self.s.config.app_agent_id),
            **message,
        }
        if duplicate_check_s:
            # WeCom delivers the same request JSON once within the interval, so a re-send of
            # this row after a send whose outcome we never learnt (a timeout, a crash before
            # 'sent' was recorded: the outbox retries both) does not reach the member twice. Only
            # for callers whose every legitimate message differs in content (pages carry their
            # step): by default a repeat with the same text is a new message and must arrive.
            body["enable_duplicate_check"] = 1
            body["duplicate_check_interval"] = int(duplicate_check_s)
        return await self.s.app_client.send(
            "/cgi-bin/message/send",
            body,
            recipient=sender_id_for(touser),
            dedupe_key=dedupe_key,
            limiter=self.s.app_limiter,
            limiter_keys=self.limiter_keys(touser),
        )

    async def send_text(
        self, userid: str, text: str, *, dedupe_key: Optional[str] = None
    ) -> SendResult:
        parts = split_utf8(text, APP_TEXT_MAX_BYTES)
        results: List[SendResult] = []
        for i, part in enumerate(parts):
            key = dedupe_key if (dedupe_key is None or len(parts) == 1) else f"{dedupe_key}:{i}"
            results.append(
                await self._send(userid, {"msgtype": "text", "text": {"content": part}}, key)
            )
        # report the first failure, else the last success (split_utf8 gives one part at least)
        return next((r for r in results if not r.ok), results[-1])

    async def send_voice(
        self, userid: str, media_id: str, *, dedupe_key: Optional[str] = None
    ) -> SendResult:
        """A voice message (an app media_id from media/upload, AMR) to an advisor."""
        return await self._send(
            userid, {"msgtype": "voice", "voice": {"media_id": media_id}}, dedupe_key
        )

    async def send_textcard(
        self,
        userid: str,
        title: str,
        description: str,
        url: str,
        btntxt: str = "详情",
        *,
        dedupe_key: Optional[str] = None,
        duplicate_check_s: Optional[int] = None,
    ) -> SendResult:
        card = {
            "title": truncate_utf8(title, TEXTCARD_TITLE_MAX_BYTES),
            "description": truncate_utf8(description, TEXTCARD_DESC_MAX_BYTES),
            "url": url,
            "btntxt": (btntxt or "详情")[:4],
        }
        return await self._send(
            userid, {"msgtype": "textcard", "textcard": card}, dedupe_key, duplicate_check_s
        )

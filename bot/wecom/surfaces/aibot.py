"""智能机器人 (WeCom AI bot, JSON callbacks): single chats, and groups where it is @-mentioned.

A message callback carries a `response_url` (https://qyapi.weixin.qq.com/cgi-bin/aibot/response?
response_code=...): it may be POSTed to once, within an hour, with a markdown message. We answer
the callback at once with an empty body and send the whole bot turn as one markdown message
there. The `enter_chat` event (a user opens the single chat) is answered passively with a welcome
text in the HTTP response. Stream refreshes (msgtype "stream") only follow a stream reply, which
we never start, so they are ignored.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from bot.wecom.api.client import SendResult
from bot.wecom.dedupe import aibot_key
from bot.wecom.delivery.inbox import Inbound
from bot.wecom.messages import AIBOT_MARKDOWN_MAX_BYTES, strip_mentions, truncate_utf8
from bot.wecom.protocol import AibotMessage, Kind, KindClass, SendStatus
from bot.wecom.sender import wecom_sender

logger = logging.getLogger(__name__)


def sender_id_for(userid: str) -> str:
    return wecom_sender(userid)


def _text_of(msg: Dict[str, Any]) -> Optional[str]:
    msgtype = msg.get("msgtype")
    if msgtype == "text":
        return str((msg.get("text") or {}).get("content") or "")
    if msgtype == "voice":  # the AI bot delivers voice already transcribed
        return str((msg.get("voice") or {}).get("content") or "")
    if msgtype == "mixed":
        items = (msg.get("mixed") or {}).get("msg_item") or []
        parts = [
            str((i.get("text") or {}).get("content") or "")
            for i in items
            if isinstance(i, dict) and i.get("msgtype") == "text"
        ]
        return " ".join(p for p in parts if p) or None
    return None


def normalize(msg: Dict[str, Any], bot_name: Optional[str] = None) -> Optional[Inbound]:
    """Decrypted callback JSON -> inbox row; None for what needs no handling (stream refresh)."""
    msgtype = str(msg.get("msgtype") or "unknown")
    if msgtype == "stream":
        return None
    sender: Dict[str, Any] = msg["from"] if isinstance(msg.get("from"), dict) else {}
    userid = sender.get("userid")
    if not userid:
        raise ValueError("no from.userid")
    chattype = str(msg.get("chattype") or ("group" if msg.get("chatid") else "single"))
    common: Dict[str, Any] = dict(
        msgtype=msgtype,
        msgid=msg.get("msgid"),
        userid=userid,
        chatid=msg.get("chatid"),
        chattype=chattype,
        aibotid=msg.get("aibotid"),
        response_url=msg.get("response_url"),
        raw=msg,
    )
    text = _text_of(msg)
    if text is not None:
        clean, mentioned = strip_mentions(text, bot_name)
        message = AibotMessage(**common, text=clean, mentioned=mentioned or chattype != "group")
        kind = Kind(KindClass.MESSAGE, "text")
    elif msgtype == "event":
        event: Dict[str, Any] = msg["event"] if isinstance(msg.get("event"), dict) else {}
        message = AibotMessage(**common, event=event)
        kind = Kind.event(event.get("eventtype") or "unknown")
    else:
        message = AibotMessage(**common)
        kind = Kind(KindClass.MESSAGE, msgtype)
    return Inbound.of(aibot_key(msg), message, kind)


def welcome_reply(text: str) -> Dict[str, Any]:
    """Passive reply to enter_chat (the only event WeCom accepts a text answer for)."""
    return {"msgtype": "text", "text": {"content": text}}


def response_url_allowed(response_url: str, api_base: str) -> bool:
    """Only WeCom's own host may receive a reply: the host of WECOM_API_BASE (qyapi.weixin.qq.com;
    the sandbox on a developer machine), over https unless that base is the local sandbox, on the
    aibot response path. A callback naming any other URL would otherwise make us POST the guest's
    answer wherever the sender of the callback wants."""
    from urllib.parse import urlparse

    from bot.wecom.config import is_local_api

    try:
        url, base = urlparse(response_url), urlparse(api_base)
        same_host = (url.hostname or "").lower() == (base.hostname or "").lower() and (
            url.port or None
        ) == (base.port or None)
    except ValueError:  # e.g. an invalid port
        return False
    scheme_ok = url.scheme == "https" or (is_local_api(api_base) and url.scheme == base.scheme)
    return bool(
        same_host
        and scheme_ok
        and not url.username
        and url.path.startswith("/cgi-bin/aibot/response")
    )


def markdown_message(content: str) -> Dict[str, Any]:
    return {
        "msgtype": "markdown",
        "markdown": {"content": truncate_utf8(content, AIBOT_MARKDOWN_MAX_BYTES)},
    }


class AibotService:
    def __init__(self, services) -> None:
        self.s = services

    async def reply(
        self,
        response_url: str,
        content: str,
        *,
        recipient: Optional[str] = None,
        dedupe_key: Optional[str] = None,
    ) -> SendResult:
        """POST the turn's markdown to the callback's response_url (usable once, for an hour)."""
        if not response_url:
            logger.warning("aibot reply to %s dropped: the callback had no response_url", recipient)
            await self.s.outbox.begin(
                "aibot",
                "(no response_url)",
                markdown_message(content),
                recipient,
                dedupe_key,
                status=SendStatus.DEAD.value,
            )
            return SendResult(SendStatus.DEAD.value)
        if not response_url_allowed(response_url, self.s.config.api_base):
            logger.warning(
                "aibot reply to %s dropped: response_url is not on WeCom's host", recipient
            )
            await self.s.outbox.begin(
                "aibot",
                "(foreign response_url)",
                markdown_message(content),
                recipient,
                dedupe_key,
                status=SendStatus.DEAD.value,
            )
            return SendResult(SendStatus.DEAD.value)
        return await self.s.robot_client.send(
            response_url,
            markdown_message(content),
            recipient=recipient,
            dedupe_key=dedupe_key,
            auth=False,
        )


def render_turn(messages: List[Dict[str, Any]], addressee: Optional[str] = None) -> str:
    """Rasa messages of one turn -> one markdown text (buttons as a numbered list)."""
    from bot.wecom.messages import button_lines

    parts: List[str] = []
    for m in messages:
        text = str(m.get("text") or "").strip()
        if m.get("buttons"):
            lines = button_lines(m["buttons"])
            text = f"{text}\n{lines}" if text else lines
        if m.get("image"):
            text = f"{text}\n![]({m['image']})" if text else f"![]({m['image']})"
        if text:
            parts.append(text)
    body = "\n\n".join(parts)
    if addressee and body:
        body = f"{addressee}，{body}"
    return body

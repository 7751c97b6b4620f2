"""The turn runner: one claimed inbox row -> its surface's typed message -> the conversation (or a
fixed answer) -> the reply. Rasa-free: the conversation is a port (`Conversation`) the Rasa
channel (connectors/wecom.py) implements; what may answer before the conversation does (a rating,
a survey score) comes in as `GuestHook`s from the process' composition root, and the advisors'
commands through its `AppCommandRouter`.

`handle(item)` returns the row's final status; if it raises, the pipeline releases the row for a
retry and, after the last attempt, calls `on_failed` (the guest gets an apology).
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Protocol, Sequence

from bot.wecom.delivery.inbox import InboxItem
from bot.wecom.messages import REPLIES, clip_inbound, reply_for_kind
from bot.wecom.protocol import (
    AibotMessage,
    AppMessage,
    Event,
    InboxStatus,
    KfMessage,
    KindClass,
    public_metadata,
)
from bot.wecom.surfaces.app import AppCommandRouter
from bot.wecom.surfaces.identity import EnsureGuest, identity_of
from bot.wecom.surfaces.outbound import AibotReply, KfReply, MenuIds, Message, Reply

logger = logging.getLogger(__name__)

DONE, IGNORED = InboxStatus.DONE.value, InboxStatus.IGNORED.value

# (sender id, text) -> a reply that ends the turn before the conversation (e.g. a rating was
# recorded and thanked), or None to go on. A hook that raises is logged and skipped.
GuestHook = Callable[[str, str], Awaitable[Optional[str]]]
# A feature the composition root attaches when the channel starts (inside the event loop, where
# its clients live): given the WeCom services and the app command router, it may add commands
# to the router and returns its guest hooks.
Extension = Callable[[Any, AppCommandRouter], Awaitable[Sequence[GuestHook]]]


class Conversation(Protocol):
    """The dialogue engine, seen from WeCom (implemented by the Rasa channel)."""

    async def converse(
        self,
        text: str,
        reply: Reply,
        sender_id: str,
        message_id: Optional[str],
        metadata: Dict[str, Any],
    ) -> None: ...

    async def answered_before(self, sender_id: str, message_id: str) -> Optional[List[Message]]:
        """The messages the engine answered `message_id` with, if it got that far before."""
        ...


class MediaHandler(Protocol):
    async def handle(self, sender_id: str, kind: str, payload: dict) -> Any: ...


class TurnRunner:
    def __init__(
        self,
        services,
        conversation: Conversation,
        *,
        ensure_guest: EnsureGuest,
        app_router: AppCommandRouter,
        hooks: Sequence[GuestHook] = (),
        welcome_intent: Optional[str] = None,
        kf_url: Optional[str] = None,
        media: Optional[Callable[[], MediaHandler]] = None,
    ) -> None:
        self.s = services
        self.conversation = conversation
        self.ensure_guest = ensure_guest
        self.app_router = app_router
        self.hooks = list(hooks)
        self.welcome_intent = welcome_intent
        self.kf_url = kf_url
        self._media_factory = media
        self._media: Optional[MediaHandler] = None
        self.menus = MenuIds(services.db)

    @staticmethod
    def reply_key(item: InboxItem) -> str:
        return f"reply:{item.id}"

    async def handle(self, item: InboxItem) -> str:
        message = item.message
        if isinstance(message, KfMessage):
            return await self._kf(item, message)
        if isinstance(message, AibotMessage):
            return await self._aibot(item, message)
        return await self._app(item, message)

    # ---- 微信客服 ---------------------------------------------------------------------------
    async def _kf(self, item: InboxItem, m: KfMessage) -> str:
        kind = item.parsed_kind
        if kind.cls in (KindClass.SERVICER, KindClass.SYSTEM) or not m.external_userid:
            return IGNORED  # an advisor's own message, or account-level news: recorded only
        if kind.is_(Event.ENTER_SESSION):
            return await self._kf_welcome(item, m)
        if kind.is_event:
            if kind.is_(Event.MSG_SEND_FAIL):
                logger.warning(
                    "kf message %s to %s failed on WeCom's side (fail_type %s)",
                    m.event.get("fail_msgid"),
                    item.sender_id,
                    m.event.get("fail_type"),
                )
            return DONE
        await self.ensure_guest(item.sender_id, identity_of(m))
        reply = KfReply(self.s, m.open_kfid, m.external_userid, self.reply_key(item))
        if kind.is_text:
            text = await self.menus.payload_for(m.menu_id) if m.menu_id else (m.text or "")
            return await self._converse(item, text, reply)
        handled = await self._guest_media(item) if kind.name in ("image", "voice") else None
        text = (
            handled.reply
            if handled is not None and handled.reply
            else reply_for_kind(kind.name, item.payload)
        )
        await reply.say(item.sender_id, text)
        return DONE

    async def _kf_welcome(self, item: InboxItem, m: KfMessage) -> str:
        await self.ensure_guest(item.sender_id, identity_of(m))
        if not m.welcome_code:
            return DONE  # WeCom gives no code when a welcome is not allowed now
        assert m.external_userid is not None
        reply = KfReply(
            self.s,
            m.open_kfid,
            m.external_userid,
            self.reply_key(item),
            welcome_code=m.welcome_code,
        )
        if self.welcome_intent:
            metadata = {
                "wecom": {
                    **public_metadata(item.payload),
                    "event": Event.ENTER_SESSION.value,
                    "scene": m.event.get("scene"),
                    "scene_param": m.event.get("scene_param"),
                }
            }
            await self.conversation.converse(
                f"/{self.welcome_intent}", reply, item.sender_id, m.msgid, metadata
            )
        if not reply.buffer:
            reply.buffer.append({"text": REPLIES["welcome"]})
        await reply.flush(item.sender_id)
        return DONE

    async def _guest_media(self, item: InboxItem):
        """A photo / voice message: kept, linked to the open complaint, voice passed to an
        advisor (bot.guest_media). None when that could not be done."""
        if self._media_factory is None:
            return None
        try:
            if self._media is None:
                self._media = self._media_factory()
            return await self._media.handle(item.sender_id, item.kind, item.payload)
        except Exception:  # never let a media problem cost the guest their answer
            logger.exception("guest media from %s not handled", item.sender_id)
            return None

    # ---- 智能机器人 -------------------------------------------------------------------------
    async def _aibot(self, item: InboxItem, m: AibotMessage) -> str:
        kind = item.parsed_kind
        if kind.is_event:
            return DONE  # enter_chat was answered in the HTTP response; others are recorded
        if m.in_group and not m.mentioned:
            return IGNORED  # in groups the bot speaks only when @-mentioned
        guest = await self.ensure_guest(item.sender_id, identity_of(m))
        addressee = (getattr(guest, "display_name", None) or m.userid) if m.in_group else None
        reply = AibotReply(
            self.s, m.response_url, addressee, self.reply_key(item), kf_url=self.kf_url
        )
        if kind.is_text:
            return await self._converse(item, m.text or "", reply)
        await reply.say(item.sender_id, reply_for_kind(kind.name, item.payload))
        return DONE

    # ---- the app (advisors) -----------------------------------------------------------------
    async def _app(self, item: InboxItem, m: AppMessage) -> str:
        if await self.app_router.dispatch(m):
            return DONE
        if item.parsed_kind.is_event:
            return IGNORED  # enter_agent, menu views...: nothing to say
        await self.s.app.send_text(
            m.userid, REPLIES["app_unhandled"], dedupe_key=f"{self.reply_key(item)}:0"
        )
        return DONE

    # ---- the conversation ---------------------------------------------------------------------
    async def _converse(self, item: InboxItem, text: str, reply: Reply) -> str:
        text, truncated = clip_inbound(text)
        if not text:
            await reply.say(item.sender_id, REPLIES["empty"])
            return DONE
        message_id = item.payload.get("msgid") or item.dedupe_key
        if item.attempts > 1:
            # An earlier attempt may have got through the conversation (tracker saved) and died
            # before the reply went out: send what was answered then rather than run it twice.
            answered = await self.conversation.answered_before(item.sender_id, message_id)
            if answered is not None:
                logger.info(
                    "WeCom message %s of %s was handled before a restart: its reply is resent",
                    message_id,
                    item.sender_id,
                )
                for message in answered:
                    await reply.add(item.sender_id, message)
                await reply.flush(item.sender_id)
                return DONE
        if not text.startswith("/"):
            answer = await self._before_turn(item.sender_id, text)
            if answer:
                await reply.say(item.sender_id, answer)
                return DONE
        metadata = {
            "wecom": {**public_metadata(item.payload), "truncated": truncated, "inbox_id": item.id}
        }
        await self.conversation.converse(text, reply, item.sender_id, message_id, metadata)
        await reply.flush(item.sender_id)
        return DONE

    async def _before_turn(self, sender_id: str, text: str) -> Optional[str]:
        for hook in self.hooks:
            try:
                answer = await hook(sender_id, text)
            except Exception:  # a failing check never loses the message: the turn goes on
                logger.exception(
                    "guest hook %s failed for %s; passing the message on",
                    getattr(hook, "__qualname__", hook),
                    sender_id,
                )
                continue
            if answer:
                return answer
        return None

    async def on_failed(self, item: InboxItem, error: str) -> None:
        """A message that could not be handled after every attempt: tell the guest."""
        message = item.message
        kind = item.parsed_kind
        reply: Reply
        if isinstance(message, KfMessage) and kind.is_text and message.external_userid:
            reply = KfReply(self.s, message.open_kfid, message.external_userid, f"failed:{item.id}")
        elif isinstance(message, AibotMessage) and kind.is_text:
            reply = AibotReply(
                self.s, message.response_url, None, f"failed:{item.id}", kf_url=self.kf_url
            )
        else:
            return
        await reply.say(item.sender_id, REPLIES["busy"])

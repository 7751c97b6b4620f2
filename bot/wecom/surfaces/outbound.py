"""Outbound composition per surface: what the bot says in one turn (Rasa's responses, as plain
dicts) becomes the messages each surface can carry, within its limits.

A `Reply` collects a turn's messages and delivers them when the turn ends (`flush`), so a surface
can merge them (the kf budget is 5 messages per 48 h; the aibot response_url works once). After
the turn (reminders, later pushes) messages go out as they come. Every send carries a dedupe key
`<reply key>:<n>` (`reply:<inbox id>:<n>` in a turn), so a turn replayed after a crash does not
answer twice. Rasa-free: the Rasa output channel (connectors/wecom.py) only hands messages in.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Dict, List, Optional

from bot.wecom.dedupe import short_id
from bot.wecom.messages import (
    KF_TEXT_MAX_BYTES,
    MENU_HEAD_MAX_BYTES,
    MENU_ID_MAX_BYTES,
    MENU_ITEM_MAX_BYTES,
    MENU_MAX_ITEMS,
    button_lines,
    merge_texts,
    truncate_utf8,
    utf8_len,
)
from bot.wecom.protocol import OutboxStatus, SendStatus
from bot.wecom.sender import SenderId, kf_sender
from bot.wecom.surfaces import aibot as aibot_mod
from bot.wecom.surfaces import kf as kf_mod
from bot.wecom.surfaces.group_privacy import external_userid_of, is_private, note, split_private

logger = logging.getLogger(__name__)

Message = Dict[str, Any]  # one response: {"text"}, {"text", "buttons"}, {"image"}, {"custom"}
# A send counted as delivered (or as good as: WeCom has it, or it waits for its retry).
DELIVERED = tuple(
    s.value for s in (SendStatus.SENT, SendStatus.DUPLICATE, SendStatus.DEFERRED, SendStatus.RETRY)
)


class MenuIds:
    """菜单消息 ids: a button payload that fits in WeCom's 64-byte id is its own id; a longer
    one is stored (wecom_menu_payload) under a hash, and the click maps back to it."""

    def __init__(self, db) -> None:
        self.db = db

    async def id_for(self, payload: str) -> str:
        if 0 < utf8_len(payload) <= MENU_ID_MAX_BYTES:
            return payload
        menu_id = "m_" + short_id(payload, 30)

        def store() -> None:
            from bot.wecom.models import MenuPayload

            with self.db.session() as s:
                if s.get(MenuPayload, menu_id) is None:
                    s.add(MenuPayload(menu_id=menu_id, payload=payload))

        await self.db.run(store)
        return menu_id

    async def payload_for(self, menu_id: str) -> str:
        def load() -> Optional[str]:
            from bot.wecom.models import MenuPayload

            with self.db.session() as s:
                row = s.get(MenuPayload, menu_id)
                return row.payload if row else None

        return (await self.db.run(load)) or menu_id


def plain_text(message: Message) -> str:
    """A message as text, for surfaces without menus (buttons as numbered lines)."""
    text = str(message.get("text") or "").strip()
    if message.get("buttons"):
        lines = button_lines(message["buttons"])
        text = f"{text}\n{lines}" if text else lines
    if message.get("image"):
        text = f"{text}\n{message['image']}" if text else str(message["image"])
    return text


async def compose_kf(menus: MenuIds, messages: List[Message]) -> List[Dict[str, Any]]:
    """A turn's messages -> kf message payloads, merging consecutive texts."""
    out: List[Dict[str, Any]] = []
    texts: List[str] = []

    def flush_texts() -> None:
        for part in merge_texts([t for t in texts if t.strip()], KF_TEXT_MAX_BYTES):
            if part.strip():
                out.append(kf_mod.text_message(part))
        texts.clear()

    for message in messages:
        custom = message.get("custom")
        if isinstance(custom, dict) and custom.get("msgtype"):
            flush_texts()
            out.append(custom)  # a raw WeCom kf payload, e.g. {"msgtype": "link", ...}
            continue
        if message.get("buttons"):
            flush_texts()
            head = str(message.get("text") or "")
            if utf8_len(head) > MENU_HEAD_MAX_BYTES:
                out.extend(kf_mod.text_message(p) for p in merge_texts([head], KF_TEXT_MAX_BYTES))
                head = ""
            buttons = list(message["buttons"])
            if len(buttons) > MENU_MAX_ITEMS:
                logger.warning(
                    "菜单消息 holds %d items at most: %d dropped",
                    MENU_MAX_ITEMS,
                    len(buttons) - MENU_MAX_ITEMS,
                )
            items = []
            for button in buttons[:MENU_MAX_ITEMS]:
                title = truncate_utf8(
                    str(button.get("title") or button.get("payload") or ""), MENU_ITEM_MAX_BYTES
                )
                payload = str(button.get("payload") or button.get("title") or "")
                if title and payload:
                    items.append((await menus.id_for(payload), title))
            out.append(kf_mod.menu_message(head, items))
            continue
        text = str(message.get("text") or "")
        if message.get("image"):
            text = f"{text}\n{message['image']}" if text else str(message["image"])
        if text:
            texts.append(text)
    flush_texts()
    return out


def merge_for_welcome(payloads: List[Dict[str, Any]]) -> Dict[str, Any]:
    """send_msg_on_event takes one message (text or msgmenu): fold the turn into it."""
    texts = [p["text"]["content"] for p in payloads if p.get("msgtype") == "text"]
    menus = [p for p in payloads if p.get("msgtype") == "msgmenu"]
    if menus:
        menu = dict(menus[0]["msgmenu"])
        head = "\n\n".join(texts + ([menu.get("head_content")] if menu.get("head_content") else []))
        menu["head_content"] = truncate_utf8(head, MENU_HEAD_MAX_BYTES)
        return {"msgtype": "msgmenu", "msgmenu": menu}
    return kf_mod.text_message(truncate_utf8("\n\n".join(texts), KF_TEXT_MAX_BYTES))


class Reply:
    """One recipient's messages of a turn (buffered until `flush`) or of a push (sent at once)."""

    def __init__(
        self, services, reply_key: Optional[str] = None, *, buffering: bool = True
    ) -> None:
        self.s = services
        self.reply_key = reply_key or f"push:{uuid.uuid4().hex}"
        self._n = 0
        self.buffer: List[Message] = []
        self.buffering = buffering
        self.delivered: List[Dict[str, Any]] = []  # what went out (tests, debugging)

    def next_key(self) -> str:
        key = f"{self.reply_key}:{self._n}"
        self._n += 1
        return key

    async def add(self, recipient_id: str, message: Message) -> None:
        if self.buffering:
            self.buffer.append(message)
        else:
            await self.deliver(recipient_id, [message])

    async def flush(self, recipient_id: str) -> None:
        self.buffering = False
        messages, self.buffer = self.buffer, []
        if messages:
            await self.deliver(recipient_id, messages)

    async def say(self, recipient_id: str, text: str) -> None:
        """One text as the whole turn (fixed answers: media, empty input, apologies)."""
        await self.add(recipient_id, {"text": text})
        await self.flush(recipient_id)

    async def deliver(self, recipient_id: str, messages: List[Message]) -> None:
        raise NotImplementedError


class KfReply(Reply):
    """微信客服: texts split/merged at 2048 bytes, buttons as 菜单消息, a welcome via
    send_msg_on_event (its code is usable once)."""

    def __init__(
        self,
        services,
        open_kfid: Optional[str],
        external_userid: str,
        reply_key: Optional[str] = None,
        welcome_code: Optional[str] = None,
    ) -> None:
        super().__init__(services, reply_key)
        self.open_kfid = open_kfid
        self.external_userid = external_userid
        self.welcome_code = welcome_code

    async def deliver(self, recipient_id: str, messages: List[Message]) -> None:
        payloads = await compose_kf(MenuIds(self.s.db), messages)
        if not payloads:
            return
        if self.welcome_code:
            code, self.welcome_code = self.welcome_code, None
            welcome = merge_for_welcome(payloads)
            result = await self.s.kf.send_on_event(
                code, welcome, recipient=recipient_id, dedupe_key=self.next_key()
            )
            self.delivered.append({"welcome": welcome, "status": result.status})
            return
        for payload in payloads:
            result = await self.s.kf.send(
                self.open_kfid, self.external_userid, payload, dedupe_key=self.next_key()
            )
            self.delivered.append({"message": payload, "status": result.status})


class AibotReply(Reply):
    """智能机器人: the whole turn as one markdown message to the callback's response_url; what is
    private (the guest's own bookings, orders) goes to them through 微信客服 instead."""

    def __init__(
        self,
        services,
        response_url: Optional[str],
        addressee: Optional[str] = None,
        reply_key: Optional[str] = None,
        kf_url: Optional[str] = None,
    ) -> None:
        super().__init__(services, reply_key)
        self.response_url = response_url
        self.addressee = addressee
        self.kf_url = kf_url

    async def deliver(self, recipient_id: str, messages: List[Message]) -> None:
        messages, private = split_private(messages)
        if private:  # to them alone, a note in the group
            sent = await deliver_privately(self.s, recipient_id, private, self.next_key())
            if self.addressee or not sent:  # in a group (or nowhere private to put it)
                messages = messages + [{"text": note(sent, self.kf_url)}]
            else:  # a single chat is private already
                messages = messages + private
        content = aibot_mod.render_turn(messages, self.addressee)
        if not content:
            return
        url, self.response_url = self.response_url, None  # usable once
        if url is None:
            logger.warning(
                "aibot message to %s after its response_url was used: recorded, not sent",
                recipient_id,
            )
            await self.s.outbox.begin(
                "aibot",
                "(response_url used)",
                aibot_mod.markdown_message(content),
                recipient_id,
                self.next_key(),
                status=OutboxStatus.DEAD.value,
            )
            return
        result = await self.s.aibot.reply(
            url, content, recipient=recipient_id, dedupe_key=self.next_key()
        )
        self.delivered.append({"markdown": content, "status": result.status})


class AppReply(Reply):
    """Self-built app (advisors): plain texts, buttons listed as numbered lines."""

    def __init__(self, services, userid: str, reply_key: Optional[str] = None) -> None:
        super().__init__(services, reply_key)
        self.userid = userid

    async def deliver(self, recipient_id: str, messages: List[Message]) -> None:
        for message in messages:
            text = plain_text(message)
            if text:
                result = await self.s.app.send_text(self.userid, text, dedupe_key=self.next_key())
                self.delivered.append({"text": text, "status": result.status})


class RoutingReply(Reply):
    """Messages outside a conversation turn (Rasa's API, reminders): routed by sender id."""

    def __init__(self, services) -> None:
        super().__init__(services, buffering=False)

    async def deliver(self, recipient_id: str, messages: List[Message]) -> None:
        sender = SenderId.parse(recipient_id)
        if sender.is_kf:
            open_kfid = await self.s.kf.last_open_kfid(sender.local)
            if not open_kfid:
                logger.warning("no 微信客服 account known for %s: message not sent", recipient_id)
                return
            await KfReply(self.s, open_kfid, sender.local, self.next_key()).deliver(
                recipient_id, messages
            )
        elif sender.is_external_contact:  # a group guest: privately, via 微信客服
            _, plain = split_private(messages)
            rest = [m for m in messages if not is_private(m)] + plain
            if await deliver_privately(self.s, recipient_id, rest, self.next_key()):
                return
            logger.warning(
                "no push channel to external contact %s (no 微信客服 chat): message not sent",
                sender.local,
            )
            await self.s.outbox.begin(
                "aibot",
                "(no push channel)",
                {"messages": messages},
                recipient_id,
                self.next_key(),
                status=OutboxStatus.DEAD.value,
            )
        elif sender.is_wecom:
            await AppReply(self.s, sender.local, self.next_key()).deliver(recipient_id, messages)
        else:
            logger.warning("cannot route a WeCom message to %s", recipient_id)


async def deliver_privately(
    services, recipient_id: str, messages: List[Message], reply_key: str
) -> bool:
    """To a group guest (an external contact), through their 微信客服 chat: the same person has
    the same external_userid there. False when they have none with us (or WeCom refuses)."""
    external_userid = external_userid_of(recipient_id)
    if not external_userid or not messages:
        return False
    open_kfid = await services.kf.last_open_kfid(external_userid)
    if not open_kfid:
        return False
    out = KfReply(services, open_kfid, external_userid, f"{reply_key}:private")
    await out.deliver(kf_sender(external_userid), messages)
    return bool(out.delivered) and all(d.get("status") in DELIVERED for d in out.delivered)

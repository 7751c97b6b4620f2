"""Rasa input/output channel for WeCom: 微信客服 (kf), 智能机器人 (aibot) and the self-built app.

Modelled on rasa/core/channels/slack.py: check the signature, answer at once, do the work in a
background task. What WeCom adds:

- Callbacks must get HTTP 200 within 5 s or they are retried (3 times). Each accepted callback is
  stored in the inbox (bot.wecom.inbox) *before* the 200, deduplicated by MsgId (events: sender +
  CreateTime + Event + ...), then processed by a per-sender worker: a guest's messages reach Rasa
  one at a time, in order; rows left by a process that died are picked up at startup and by a
  periodic sweep. Nothing acknowledged is lost; a reply already sent is not sent again (outbox
  dedupe keys `reply:<inbox id>:<n>`).
- 微信客服 callbacks only announce news: the messages are pulled with kf/sync_msg (cursor kept in
  the database, advanced only after the page is stored).
- Forged or stale signatures get 403; malformed bodies 400; nothing raises a 500.

Routes (Rasa mounts the blueprint under /webhooks/wecom): GET+POST /kf, /aibot, /app (the same
receiving code as the stand-alone intake server, bot.wecom.intake); POST /inbox (the intake server
says which senders have new inbox rows); GET / health.
Rasa sender ids: `kf:<external_userid>` (微信客服 guests), `wecom:<userid>` (智能机器人 users,
advisors). Every guest sender id gets a CRM guest on first contact.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Text

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.wecom import aibot as aibot_mod
from bot.wecom import app as app_mod
from bot.wecom import group_privacy
from bot.wecom import kf as kf_mod
from bot.wecom.config import WeComConfig
from bot.wecom.dedupe import short_id
from bot.wecom.inbox import InboxItem
from bot.settings import get_settings
from bot.wecom.intake import (
    HANDLE_MS_HEADER,
    INBOX_TOKEN_HEADER,
    CallbackIntake,
    inbox_caller_allowed,
)
from bot.wecom.messages import (
    KF_TEXT_MAX_BYTES,
    MENU_HEAD_MAX_BYTES,
    MENU_ID_MAX_BYTES,
    MENU_ITEM_MAX_BYTES,
    MENU_MAX_ITEMS,
    REPLIES,
    button_lines,
    clip_inbound,
    merge_texts,
    reply_for_kind,
    truncate_utf8,
    utf8_len,
)
from bot.wecom.pipeline import Dispatcher
from bot.wecom.sender import SenderId, kf_sender
from bot.wecom.services import WeComServices, set_services

logger = logging.getLogger(__name__)

CHANNEL_NAME = "wecom"


# ==== output channels ===========================================================================

class WeComOutput(OutputChannel):
    """Collects a turn's responses and delivers them when the turn ends (`flush`), so a surface
    can merge them (the kf budget is 5 messages per 48 h; the aibot response_url works once).
    After the turn (reminders, later pushes) messages go out as they come."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(self, services: WeComServices, reply_key: Optional[str] = None) -> None:
        super().__init__()
        self.s = services
        self.reply_key = reply_key or f"push:{uuid.uuid4().hex}"
        self._n = 0
        self.buffer: List[Dict[str, Any]] = []
        self.buffering = True
        self.delivered: List[Dict[str, Any]] = []  # what went out (tests, debugging)

    def next_key(self) -> str:
        key = f"{self.reply_key}:{self._n}"
        self._n += 1
        return key

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self._emit(recipient_id, {"text": text})

    async def send_text_with_buttons(self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]],
                                     **kwargs: Any) -> None:
        await self._emit(recipient_id, {"text": text, "buttons": list(buttons or [])})

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._emit(recipient_id, {"image": image})

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:
        await self._emit(recipient_id, {"text": str(attachment)})

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        await self._emit(recipient_id, {"custom": json_message})

    async def _emit(self, recipient_id: Text, message: Dict[str, Any]) -> None:
        if self.buffering:
            self.buffer.append(message)
        else:
            await self.deliver(recipient_id, [message])

    async def flush(self, recipient_id: Text) -> None:
        self.buffering = False
        messages, self.buffer = self.buffer, []
        if messages:
            await self.deliver(recipient_id, messages)

    async def deliver(self, recipient_id: Text, messages: List[Dict[str, Any]]) -> None:
        raise NotImplementedError


class KfOutput(WeComOutput):
    """微信客服: text (split/merged at 2048 bytes), buttons as 菜单消息, welcome via send_msg_on_event."""

    def __init__(self, services, open_kfid: str, external_userid: str, reply_key: Optional[str] = None,
                 welcome_code: Optional[str] = None) -> None:
        super().__init__(services, reply_key)
        self.open_kfid = open_kfid
        self.external_userid = external_userid
        self.welcome_code = welcome_code

    async def deliver(self, recipient_id: Text, messages: List[Dict[str, Any]]) -> None:
        payloads = await compose_kf(self.s, messages)
        if not payloads:
            return
        if self.welcome_code:
            code, self.welcome_code = self.welcome_code, None
            welcome = merge_for_welcome(payloads)
            result = await self.s.kf.send_on_event(code, welcome, recipient=recipient_id, dedupe_key=self.next_key())
            self.delivered.append({"welcome": welcome, "status": result.status})
            return
        for payload in payloads:
            result = await self.s.kf.send(self.open_kfid, self.external_userid, payload, dedupe_key=self.next_key())
            self.delivered.append({"message": payload, "status": result.status})


class AibotOutput(WeComOutput):
    """智能机器人: the whole turn as one markdown message to the callback's response_url."""

    def __init__(self, services, response_url: Optional[str], addressee: Optional[str] = None,
                 reply_key: Optional[str] = None) -> None:
        super().__init__(services, reply_key)
        self.response_url = response_url
        self.addressee = addressee

    async def deliver(self, recipient_id: Text, messages: List[Dict[str, Any]]) -> None:
        messages, private = group_privacy.split_private(messages)
        if private:  # the guest's own bookings / orders: to them alone, a note in the group
            sent = await deliver_privately(self.s, recipient_id, private, self.next_key())
            if self.addressee or not sent:  # in a group (or nowhere private to put it)
                messages = messages + [{"text": group_privacy.note(sent, _kf_url())}]
            else:  # a single chat is private already
                messages = messages + private
        content = aibot_mod.render_turn(messages, self.addressee)
        if not content:
            return
        url, self.response_url = self.response_url, None  # usable once
        if url is None:
            logger.warning("aibot message to %s after its response_url was used: recorded, not sent", recipient_id)
            await self.s.outbox.begin("aibot", "(response_url used)", aibot_mod.markdown_message(content),
                                      recipient_id, self.next_key(), status="dead")
            return
        result = await self.s.aibot.reply(url, content, recipient=recipient_id, dedupe_key=self.next_key())
        self.delivered.append({"markdown": content, "status": result.status})


class AppOutput(WeComOutput):
    """Self-built app (advisors): plain texts, buttons listed as numbered lines."""

    def __init__(self, services, userid: str, reply_key: Optional[str] = None) -> None:
        super().__init__(services, reply_key)
        self.userid = userid

    async def deliver(self, recipient_id: Text, messages: List[Dict[str, Any]]) -> None:
        for message in messages:
            text = _plain_text(message)
            if text:
                result = await self.s.app.send_text(self.userid, text, dedupe_key=self.next_key())
                self.delivered.append({"text": text, "status": result.status})


class RoutingOutput(WeComOutput):
    """Output channel without a conversation turn (Rasa's API, reminders): routes by sender id."""

    def __init__(self, services) -> None:
        super().__init__(services)
        self.buffering = False

    async def deliver(self, recipient_id: Text, messages: List[Dict[str, Any]]) -> None:
        sender = SenderId.parse(recipient_id)
        if sender.is_kf:
            external_userid = sender.local
            open_kfid = await self.s.kf.last_open_kfid(external_userid)
            if not open_kfid:
                logger.warning("no 微信客服 account known for %s: message not sent", recipient_id)
                return
            await KfOutput(self.s, open_kfid, external_userid, self.next_key()).deliver(recipient_id, messages)
        elif sender.is_wecom:
            userid = sender.local
            if sender.is_external_contact:  # a guest: privately, via 微信客服
                _, plain = group_privacy.split_private(messages)
                rest = [m for m in messages if not group_privacy.is_private(m)] + plain
                if await deliver_privately(self.s, recipient_id, rest, self.next_key()):
                    return
                logger.warning("no push channel to external contact %s (no 微信客服 chat): "
                               "message not sent", userid)
                await self.s.outbox.begin("aibot", "(no push channel)", {"messages": messages}, recipient_id,
                                          self.next_key(), status="dead")
                return
            await AppOutput(self.s, userid, self.next_key()).deliver(recipient_id, messages)
        else:
            logger.warning("cannot route a WeCom message to %s", recipient_id)


async def deliver_privately(services, recipient_id: Text, messages: List[Dict[str, Any]],
                            reply_key: str) -> bool:
    """To a group guest (an external contact), through their 微信客服 chat: the same person has
    the same external_userid there. False when they have none with us (or WeCom refuses)."""
    external_userid = group_privacy.external_userid_of(recipient_id)
    if not external_userid or not messages:
        return False
    open_kfid = await services.kf.last_open_kfid(external_userid)
    if not open_kfid:
        return False
    out = KfOutput(services, open_kfid, external_userid, f"{reply_key}:private")
    await out.deliver(kf_sender(external_userid), messages)
    return bool(out.delivered) and all(d.get("status") in ("sent", "duplicate", "deferred", "retry")
                                       for d in out.delivered)


def _kf_url() -> Optional[str]:
    from bot.settings import get_settings

    return get_settings().wecom_kf_url


def _plain_text(message: Dict[str, Any]) -> str:
    text = str(message.get("text") or "").strip()
    if message.get("buttons"):
        lines = button_lines(message["buttons"])
        text = f"{text}\n{lines}" if text else lines
    if message.get("image"):
        text = f"{text}\n{message['image']}" if text else str(message["image"])
    return text


async def menu_id_for(services: WeComServices, payload: str) -> str:
    """A 菜单消息 id that comes back as `payload` when clicked (hashed + stored if too long)."""
    if 0 < utf8_len(payload) <= MENU_ID_MAX_BYTES:
        return payload
    menu_id = "m_" + short_id(payload, 30)

    def store() -> None:
        from bot.wecom.models import MenuPayload

        with services.db.session() as s:
            if s.get(MenuPayload, menu_id) is None:
                s.add(MenuPayload(menu_id=menu_id, payload=payload))

    await services.db.run(store)
    return menu_id


async def payload_for_menu_id(services: WeComServices, menu_id: str) -> str:
    def load() -> Optional[str]:
        from bot.wecom.models import MenuPayload

        with services.db.session() as s:
            row = s.get(MenuPayload, menu_id)
            return row.payload if row else None

    return (await services.db.run(load)) or menu_id


async def compose_kf(services: WeComServices, messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rasa messages of a turn -> kf message payloads, merging consecutive texts."""
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
                logger.warning("菜单消息 holds %d items at most: %d dropped", MENU_MAX_ITEMS, len(buttons) - MENU_MAX_ITEMS)
            items = []
            for button in buttons[:MENU_MAX_ITEMS]:
                title = truncate_utf8(str(button.get("title") or button.get("payload") or ""), MENU_ITEM_MAX_BYTES)
                payload = str(button.get("payload") or button.get("title") or "")
                if title and payload:
                    items.append((await menu_id_for(services, payload), title))
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


# ==== input channel =============================================================================

GuestResolver = Callable[[str, Dict[str, Any]], Awaitable[Optional[Any]]]


class WeComInput(InputChannel):
    """The `wecom` input channel (credentials.yml: `connectors.wecom.WeComInput:`)."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls(credentials or {})

    def __init__(self, credentials: Optional[Dict[str, Any]] = None, *, config: Optional[WeComConfig] = None,
                 services: Optional[WeComServices] = None, guest_resolver: Optional[GuestResolver] = None,
                 sweep_interval_s: float = 10.0, app_router: Optional[app_mod.AppCommandRouter] = None) -> None:
        # The advisors' commands (paging); the composition root owns the router.
        self.app_router = app_router if app_router is not None else app_mod.AppCommandRouter()
        self.credentials = dict(credentials or {})
        self.config = config or (services.config if services else WeComConfig.load(self.credentials))
        self._services = services
        self._guest_resolver = guest_resolver
        self._autolinker = None  # built on first use (bot.bookings.autolink)
        self._crm = None
        self._media_handler = None  # bot.guest_media.GuestMediaHandler, built on first use
        self.sweep_interval_s = sweep_interval_s
        self.on_new_message: Optional[Callable[[UserMessage], Awaitable[Any]]] = None
        self.dispatcher: Optional[Dispatcher] = None
        self._background: Set[asyncio.Task] = set()
        self._sweeper: Optional[asyncio.Task] = None
        self._failed_syncs: Dict[str, Optional[str]] = {}
        # Rasa's tracker store (taken from the agent at server start): lets a message whose
        # earlier attempt reached Rasa be answered from the tracker instead of run twice.
        self.tracker_store: Optional[Any] = None
        self.intake = CallbackIntake(self.config, _LazyServices(self), on_stored=self._on_stored,
                                     on_kf_notice=self._on_kf_notice)

    # ---- lifecycle ---------------------------------------------------------------------------
    @property
    def services(self) -> WeComServices:
        if self._services is None:
            self._services = WeComServices(self.config)
        return self._services

    def _ensure_dispatcher(self) -> Dispatcher:
        if self.dispatcher is None:
            self.dispatcher = Dispatcher(self.services.inbox, self._handle, on_failed=self._on_failed)
        return self.dispatcher

    async def start(self, on_new_message: Optional[Callable[[UserMessage], Awaitable[Any]]] = None) -> None:
        """Server start: resume unfinished inbox rows, catch up on 微信客服, start the sweep."""
        if on_new_message is not None:
            self.on_new_message = on_new_message
        set_services(self.services)  # send_app_text() & co. in this process share our clients
        self._ensure_dispatcher()
        try:
            resumed = await self.dispatcher.drain()
            kfids = await self.services.inbox.known_kfids()
        except Exception:
            logger.exception("WeCom inbox unavailable -- are the migrations applied (concierge db upgrade)?")
            resumed, kfids = 0, []
        if resumed:
            logger.info("WeCom: resuming unfinished messages of %d sender(s)", resumed)
        for open_kfid in kfids:
            self._spawn(self._sync_and_kick(open_kfid, None))
        if self.sweep_interval_s and self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._services is not None:
            await self._services.close()

    async def sweep(self) -> None:
        """One round of housekeeping: unfinished inbox rows, due outbox retries, failed kf syncs."""
        await self._ensure_dispatcher().drain()
        await self.services.retry_due()
        for open_kfid, token in list(self._failed_syncs.items()):
            self._failed_syncs.pop(open_kfid, None)
            await self._sync_and_kick(open_kfid, token)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("WeCom sweep failed")

    def _on_stored(self, sender_id: str) -> None:
        self._ensure_dispatcher().kick(sender_id)

    def _on_kf_notice(self, open_kfid: str, token: Optional[str]) -> None:
        self._spawn(self._sync_and_kick(open_kfid, token))

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until background syncs and inbox workers are done (tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            pending = [t for t in self._background if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=max(0.01, deadline - loop.time()))
            if self.dispatcher is not None:
                await self.dispatcher.wait_idle(max(0.01, deadline - loop.time()))
            if not [t for t in self._background if not t.done()]:
                return
            if loop.time() > deadline:
                raise asyncio.TimeoutError("WeCom channel still busy")

    # ---- Rasa plumbing -------------------------------------------------------------------------
    def get_output_channel(self) -> Optional[OutputChannel]:
        return RoutingOutput(self.services)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        self.on_new_message = on_new_message
        bp = Blueprint("wecom_webhook", __name__)

        @bp.listener("after_server_start")
        async def _start(app, loop) -> None:
            agent = getattr(app.ctx, "agent", None)
            if self.tracker_store is None and agent is not None:
                self.tracker_store = getattr(agent, "tracker_store", None)
            await self.start()

        @bp.listener("before_server_stop")
        async def _stop(app, loop) -> None:
            await self.stop()

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok", "surfaces": self.intake.surfaces()})

        @bp.route("/kf", methods=["GET", "POST"])
        async def kf_webhook(request: Request) -> HTTPResponse:
            return await self._webhook(request, "kf")

        @bp.route("/aibot", methods=["GET", "POST"])
        async def aibot_webhook(request: Request) -> HTTPResponse:
            return await self._webhook(request, "aibot")

        @bp.route("/app", methods=["GET", "POST"])
        async def app_webhook(request: Request) -> HTTPResponse:
            return await self._webhook(request, "app")

        @bp.route("/inbox", methods=["POST"])
        async def inbox_kick(request: Request) -> HTTPResponse:
            return await self._kick_from_intake(request)

        return bp

    # ---- HTTP ------------------------------------------------------------------------------------
    async def _webhook(self, request: Request, surface: str) -> HTTPResponse:
        started = time.perf_counter()
        args = {key: request.args.get(key) for key in request.args}
        answer = await self.intake.handle(surface, request.method, args, request.body or b"", request.ip)
        return response.text(answer.text, status=answer.status, content_type=answer.content_type,
                             headers={HANDLE_MS_HEADER: f"{(time.perf_counter() - started) * 1000:.2f}"})

    async def _kick_from_intake(self, request: Request) -> HTTPResponse:
        """The stand-alone intake server stored messages for these senders: work them off. The
        body names senders only (nothing is taken from it but whom to look at in the inbox).
        Only the intake may call it: with WECOM_INBOX_TOKEN set, the request must carry it;
        without, only loopback callers are served."""
        if not inbox_caller_allowed(request.headers.get(INBOX_TOKEN_HEADER), request.ip,
                                    get_settings().wecom_inbox_token):
            return response.text("forbidden", status=403)
        try:
            senders = (request.json or {}).get("senders") or []
        except Exception:
            return response.text("JSON body expected", status=400)
        if not isinstance(senders, list) or len(senders) > 1000 or not all(
                isinstance(x, str) and 0 < len(x) <= 128 for x in senders):
            return response.text("senders: a list of sender ids expected", status=400)
        dispatcher = self._ensure_dispatcher()
        for sender_id in dict.fromkeys(senders):
            dispatcher.kick(sender_id)
        return response.json({"kicked": len(set(senders))})

    async def _sync_and_kick(self, open_kfid: str, token: Optional[str]) -> None:
        dispatcher = self._ensure_dispatcher()

        def kick(senders: List[str]) -> None:  # per stored page: work starts at once
            for sender_id in senders:
                dispatcher.kick(sender_id)

        if not await self.services.kf.pull(open_kfid, token, on_stored=kick):
            self._failed_syncs[open_kfid] = token

    # ---- processing --------------------------------------------------------------------------
    async def _handle(self, item: InboxItem) -> str:
        if item.surface == "kf":
            return await self._handle_kf(item)
        if item.surface == "aibot":
            return await self._handle_aibot(item)
        if item.surface == "app":
            return await self._handle_app(item)
        return "ignored"

    def _reply_key(self, item: InboxItem) -> str:
        return f"reply:{item.id}"

    async def _handle_kf(self, item: InboxItem) -> str:
        p = item.payload
        kind, open_kfid, external_userid = item.kind, p.get("open_kfid"), p.get("external_userid")
        if kind.startswith(("servicer:", "system:")) or not external_userid:
            return "ignored"  # an advisor's own message, or account-level news: recorded only
        if kind == "event:enter_session":
            return await self._welcome_kf(item)
        if kind.startswith("event:"):
            if kind == "event:msg_send_fail":
                logger.warning("kf message %s to %s failed on WeCom's side (fail_type %s)",
                               (p.get("event") or {}).get("fail_msgid"), item.sender_id,
                               (p.get("event") or {}).get("fail_type"))
            return "done"
        await self._ensure_guest(item)
        out = KfOutput(self.services, open_kfid, external_userid, self._reply_key(item))
        if kind == "text":
            text = p.get("text") or ""
            if p.get("menu_id"):
                text = await payload_for_menu_id(self.services, str(p["menu_id"]))
            return await self._to_rasa(item, text, out)
        handled = await self._guest_media(item) if kind in ("image", "voice") else None
        reply = handled.reply if handled is not None and handled.reply else reply_for_kind(kind, p)
        await out.send_text_message(item.sender_id, reply)
        await out.flush(item.sender_id)
        return "done"

    async def _guest_media(self, item: InboxItem):
        """A photo / voice message: kept, linked to the open complaint, voice passed to an
        advisor (bot.guest_media). None when that could not be done."""
        try:
            if self._media_handler is None:
                from bot.guest_media import GuestMediaHandler

                self._media_handler = GuestMediaHandler.from_settings(self.services,
                                                                      self._crm_store())
            return await self._media_handler.handle(item.sender_id, item.kind, item.payload)
        except Exception:  # never let a media problem cost the guest their answer
            logger.exception("guest media from %s not handled", item.sender_id)
            return None

    async def _welcome_kf(self, item: InboxItem) -> str:
        p = item.payload
        event = p.get("event") or {}
        await self._ensure_guest(item)
        code = event.get("welcome_code")
        if not code:
            return "done"  # WeCom gives no code when a welcome is not allowed now
        out = KfOutput(self.services, p.get("open_kfid"), p.get("external_userid"), self._reply_key(item),
                       welcome_code=code)
        intent = self.config.welcome_intent
        if intent and self.on_new_message is not None:
            metadata = {"wecom": {**_public(p), "event": "enter_session", "scene": event.get("scene"),
                                  "scene_param": event.get("scene_param")}}
            await self.on_new_message(UserMessage(f"/{intent}", out, item.sender_id, input_channel=CHANNEL_NAME,
                                                  message_id=p.get("msgid"), metadata=metadata))
        if not out.buffer:
            out.buffer.append({"text": REPLIES["welcome"]})
        await out.flush(item.sender_id)
        return "done"

    async def _handle_aibot(self, item: InboxItem) -> str:
        p = item.payload
        if item.kind.startswith("event:"):
            return "done"  # enter_chat was answered in the HTTP response; others are recorded
        if p.get("chattype") == "group" and not p.get("mentioned"):
            return "ignored"  # in groups the bot speaks only when @-mentioned
        guest = await self._ensure_guest(item)
        addressee = None
        if p.get("chattype") == "group":
            addressee = getattr(guest, "display_name", None) or p.get("userid")
        out = AibotOutput(self.services, p.get("response_url"), addressee, self._reply_key(item))
        if item.kind == "text":
            return await self._to_rasa(item, p.get("text") or "", out)
        await out.send_text_message(item.sender_id, reply_for_kind(item.kind, p))
        await out.flush(item.sender_id)
        return "done"

    async def _handle_app(self, item: InboxItem) -> str:
        message = app_mod.app_message_from_payload(item.payload)
        if await self.app_router.dispatch(message):
            return "done"
        if item.kind.startswith("event:"):
            return "ignored"  # enter_agent, menu views...: nothing to say
        await self.services.app.send_text(message.userid, REPLIES["app_unhandled"],
                                          dedupe_key=f"{self._reply_key(item)}:0")
        return "done"

    async def _to_rasa(self, item: InboxItem, text: str, out: WeComOutput) -> str:
        text, truncated = clip_inbound(text)
        if not text:
            await out.send_text_message(item.sender_id, REPLIES["empty"])
            await out.flush(item.sender_id)
            return "done"
        if self.on_new_message is None:
            raise RuntimeError("the WeCom channel has no Rasa handler yet")
        message_id = item.payload.get("msgid") or item.dedupe_key
        if item.attempts > 1:
            # An earlier attempt may have got through Rasa (tracker saved) and died before the
            # reply went out: send what Rasa answered then rather than run the turn twice.
            answered = await self._answered_before(item.sender_id, message_id)
            if answered is not None:
                logger.info("WeCom message %s of %s was handled before a restart: its reply is resent",
                            message_id, item.sender_id)
                for message in answered:
                    await out._emit(item.sender_id, message)
                await out.flush(item.sender_id)
                return "done"
        metadata = {"wecom": {**_public(item.payload), "truncated": truncated, "inbox_id": item.id}}
        await self.on_new_message(UserMessage(text, out, item.sender_id, input_channel=CHANNEL_NAME,
                                              message_id=message_id, metadata=metadata))
        await out.flush(item.sender_id)
        return "done"

    async def _answered_before(self, sender_id: str, message_id: str) -> Optional[List[Dict[str, Any]]]:
        """The bot messages Rasa sent after the user message `message_id`, if the tracker has it."""
        if self.tracker_store is None:
            return None
        try:
            tracker = await self.tracker_store.retrieve(sender_id)
        except Exception as exc:  # no tracker store: run the turn (a duplicate beats a silence)
            logger.warning("tracker of %s unavailable (%s): the message is processed again", sender_id, exc)
            return None
        return bot_messages_after(tracker.events if tracker else [], message_id)

    async def _on_failed(self, item: InboxItem, error: str) -> None:
        """A message that could not be handled after every attempt: tell the guest."""
        p = item.payload
        if item.surface == "kf" and item.kind == "text" and p.get("external_userid"):
            out = KfOutput(self.services, p.get("open_kfid"), p["external_userid"], f"failed:{item.id}")
        elif item.surface == "aibot" and item.kind == "text":
            out = AibotOutput(self.services, p.get("response_url"), None, f"failed:{item.id}")
        else:
            return
        await out.send_text_message(item.sender_id, REPLIES["busy"])
        await out.flush(item.sender_id)

    # ---- identity --------------------------------------------------------------------------------
    async def _ensure_guest(self, item: InboxItem):
        """First contact creates the CRM guest; a CRM outage never blocks the conversation."""
        p = item.payload
        identity: Dict[str, Any] = {}
        if item.surface == "kf":
            identity = {"kf_open_kfid": p.get("open_kfid"), "kf_external_userid": p.get("external_userid")}
        elif item.surface == "aibot":
            userid = str(p.get("userid") or "")
            if userid.startswith(("wm", "wo")):  # WeCom external contact ids
                identity = {"wecom_external_userid": userid}
        identity = {k: v for k, v in identity.items() if v}
        self._auto_link(item.sender_id, identity.get("kf_external_userid")
                        or identity.get("wecom_external_userid"))
        try:
            if self._guest_resolver is not None:
                return await self._guest_resolver(item.sender_id, identity)
            store = self._crm_store()
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: store.get_or_create_guest(item.sender_id, **identity))
        except Exception as exc:
            logger.warning("CRM guest for %s not recorded: %s", item.sender_id, exc)
            return None

    def _auto_link(self, sender_id: str, external_userid: Optional[str]) -> None:
        """A first-time sender whose WeCom contact data names a booking profile is linked to it
        in the background (bot.bookings.autolink); the reply never waits for it."""
        if self._guest_resolver is not None or not external_userid:
            return
        if self._autolinker is None:
            from bot.bookings.autolink import AutoLinker
            from bot.bookings.identity import IdentityLinker
            from bot.wecom.externalcontact import get_contact

            self._autolinker = AutoLinker(IdentityLinker(self.services.db.engine),
                                          lambda ext: get_contact(ext, services=self.services))
        self._autolinker.schedule(sender_id, external_userid)

    def _crm_store(self):
        if self._crm is None:
            from bot.crm.store import CRMStore

            self._crm = CRMStore(self.services.db.engine)
        return self._crm


def bot_messages_after(events, message_id: str) -> Optional[List[Dict[str, Any]]]:
    """Output-channel messages of the turn that answered user message `message_id` (the
    BotUttered events up to the next user message), or None when the message is not there."""
    from rasa.shared.core.events import BotUttered, UserUttered

    messages: Optional[List[Dict[str, Any]]] = None
    for event in events:
        if isinstance(event, UserUttered):
            if messages is not None:
                break
            if event.message_id == message_id:
                messages = []
        elif messages is not None and isinstance(event, BotUttered):
            data = event.data or {}
            message: Dict[str, Any] = {"text": event.text or ""}
            if data.get("buttons"):
                message["buttons"] = data["buttons"]
            if data.get("image"):
                message["image"] = data["image"]
            if data.get("custom"):
                message["custom"] = data["custom"]
            if message.get("text") or len(message) > 1:
                messages.append(message)
    return messages


class _LazyServices:
    """The channel's services, built on first use (not in __init__: no I/O before the server runs)."""

    def __init__(self, channel: "WeComInput") -> None:
        self._channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel.services, name)


def _public(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Inbox payload without the raw WeCom body (for Rasa metadata)."""
    return {k: v for k, v in payload.items() if k not in ("raw", "response_url") and not re.match(r"^_", k)}

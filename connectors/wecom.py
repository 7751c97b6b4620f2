"""Rasa input/output channel for WeCom: 微信客服 (kf), 智能机器人 (aibot) and the self-built app.

A wire adapter in the shape of rasa/core/channels/slack.py: check the signature, drop WeCom's
retries, answer at once, do the work in a background task. Everything WeCom-specific is in
bot/wecom and Rasa-free:

- receiving: `bot.wecom.delivery.host.DeliveryHost` (its `CallbackIntake` verifies, decrypts,
  dedupes and stores each callback in the inbox before the 200; 微信客服 messages are pulled
  with sync_msg in the background) -- the same code the stand-alone intake server runs;
- working off the inbox in order, one sender at a time: `bot.wecom.delivery.pipeline.Dispatcher`;
- one turn: `bot.wecom.delivery.turns.TurnRunner` (typed message -> hooks -> conversation ->
  reply composed per surface by bot.wecom.surfaces.outbound).

This module adds only what needs Rasa: the routes, the `UserMessage` to Rasa's handler
(`converse`), the tracker lookup that lets a message whose earlier attempt reached Rasa be
answered from the tracker instead of run twice, and the output channel that hands Rasa's
responses to a `Reply`. The composition root (`from_credentials`, i.e. credentials.yml) passes
the paging and survey features in as hooks and app commands (bot.wiring).

Routes (Rasa mounts the blueprint under /webhooks/wecom): GET+POST /kf, /aibot, /app; POST /inbox
(the intake server says which senders have new inbox rows); GET / health.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Text

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.wecom.config import WeComConfig
from bot.wecom.delivery.host import DeliveryHost
from bot.wecom.delivery.intake import HANDLE_MS_HEADER, INBOX_TOKEN_HEADER, inbox_caller_allowed
from bot.wecom.delivery.pipeline import Dispatcher
from bot.wecom.delivery.tasks import BackgroundTasks
from bot.wecom.delivery.turns import Extension, GuestHook, TurnRunner
from bot.wecom.services import WeComServices, set_services
from bot.wecom.surfaces.app import AppCommandRouter
from bot.wecom.surfaces.identity import CrmGuests
from bot.wecom.surfaces.outbound import Message, Reply, RoutingReply

logger = logging.getLogger(__name__)

CHANNEL_NAME = "wecom"


class WeComOutput(OutputChannel):
    """Rasa's responses, handed to the turn's `Reply` (which composes them for the surface)."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self.reply.add(recipient_id, {"text": text})

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.reply.add(recipient_id, {"text": text, "buttons": list(buttons or [])})

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self.reply.add(recipient_id, {"image": image})

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:
        await self.reply.add(recipient_id, {"text": str(attachment)})

    async def send_custom_json(
        self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any
    ) -> None:
        await self.reply.add(recipient_id, {"custom": json_message})


class WeComInput(InputChannel):
    """The `wecom` input channel (credentials.yml: `connectors.wecom.WeComInput:`)."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        """The Rasa server's composition root for WeCom: the channel plus the features that
        attach to it (advisors' paging commands, ratings, survey answers)."""
        from bot.wiring import rasa_channel_extensions

        return cls(credentials or {}, extensions=rasa_channel_extensions())

    def __init__(
        self,
        credentials: Optional[Dict[str, Any]] = None,
        *,
        config: Optional[WeComConfig] = None,
        services: Optional[WeComServices] = None,
        app_router: Optional[AppCommandRouter] = None,
        hooks: Sequence[GuestHook] = (),
        extensions: Sequence[Extension] = (),
        tasks: Optional[BackgroundTasks] = None,
        sweep_interval_s: float = 10.0,
    ) -> None:
        self.config = config or (
            services.config if services else WeComConfig.load(dict(credentials or {}))
        )
        self._services = services
        self.app_router = app_router if app_router is not None else AppCommandRouter()
        self.hooks: List[GuestHook] = list(hooks)
        self.extensions = list(extensions)
        self.tasks = tasks or BackgroundTasks()
        self.sweep_interval_s = sweep_interval_s
        self.on_new_message: Optional[Callable[[UserMessage], Awaitable[Any]]] = None
        # Rasa's tracker store (taken from the agent at server start): see answered_before.
        self.tracker_store: Optional[Any] = None
        self._host: Optional[DeliveryHost] = None
        self.dispatcher: Optional[Dispatcher] = None
        self.runner: Optional[TurnRunner] = None

    # ---- wiring (built on first use: no I/O before the server runs) -----------------------------
    @property
    def services(self) -> WeComServices:
        if self._services is None:
            self._services = WeComServices(self.config)
        return self._services

    @property
    def host(self) -> DeliveryHost:
        if self._host is None:
            # New inbox rows go straight to the pipeline (no hop through this adapter).
            self._host = DeliveryHost(
                self.config,
                self.services,
                on_stored=self._pipeline().kick,
                housekeeping=self._housekeeping,
                sweep_interval_s=self.sweep_interval_s,
                tasks=self.tasks,
                clock=self.services.clock,
            )
        return self._host

    def _pipeline(self) -> Dispatcher:
        if self.dispatcher is None:
            from bot.guest_media import GuestMediaHandler
            from bot.settings import get_settings

            guests = CrmGuests(self.services)
            self.runner = TurnRunner(
                self.services,
                self,
                ensure_guest=guests.ensure,
                app_router=self.app_router,
                hooks=self.hooks,
                welcome_intent=self.config.welcome_intent,
                kf_url=get_settings().wecom_kf_url,
                media=lambda: GuestMediaHandler.from_settings(self.services, guests.crm()),
            )
            self.dispatcher = Dispatcher(
                self.services.inbox,
                self.runner.handle,
                on_failed=self.runner.on_failed,
                tasks=self.tasks,
                clock=self.services.clock,
            )
        return self.dispatcher

    async def _housekeeping(self) -> None:
        await self._pipeline().drain()
        await self.services.retry_due()

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(
        self, on_new_message: Optional[Callable[[UserMessage], Awaitable[Any]]] = None
    ) -> None:
        """Server start: attach the features, resume unfinished inbox rows, catch up on 微信客服."""
        if on_new_message is not None:
            self.on_new_message = on_new_message
        set_services(self.services)  # mark_tag() & co. called without services share our clients
        dispatcher = self._pipeline()
        assert self.runner is not None
        for extension in self.extensions:
            self.runner.hooks.extend(await extension(self.services, self.app_router))
        self.extensions = []
        try:
            resumed = await dispatcher.drain()
        except Exception:
            logger.exception(
                "WeCom inbox unavailable -- are the migrations applied (concierge db upgrade)?"
            )
            resumed = 0
        if resumed:
            logger.info("WeCom: resuming unfinished messages of %d sender(s)", resumed)
        await self.host.start()

    async def stop(self) -> None:
        if self.dispatcher is not None:  # first: turns in flight get their grace period
            await self.dispatcher.stop()
        await self.host.stop()
        if self._services is not None:
            await self._services.close()

    async def sweep(self) -> None:
        """One round: unfinished inbox rows, due outbox retries, failed kf syncs."""
        await self.host.sweep()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until background syncs and inbox workers are done (tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.host.wait_background(max(0.01, deadline - loop.time()))
            if self.dispatcher is not None:
                await self.dispatcher.wait_idle(max(0.01, deadline - loop.time()))
            if not self.tasks.pending():
                return

    # ---- the conversation port (bot.wecom.delivery.turns.Conversation) ----------------------------
    async def converse(
        self,
        text: str,
        reply: Reply,
        sender_id: str,
        message_id: Optional[str],
        metadata: Dict[str, Any],
    ) -> None:
        if self.on_new_message is None:
            raise RuntimeError("the WeCom channel has no Rasa handler yet")
        await self.on_new_message(
            UserMessage(
                text,
                WeComOutput(reply),
                sender_id,
                input_channel=CHANNEL_NAME,
                message_id=message_id,
                metadata=metadata,
            )
        )

    async def answered_before(self, sender_id: str, message_id: str) -> Optional[List[Message]]:
        """The bot messages Rasa sent after the user message `message_id`, if the tracker has it."""
        if self.tracker_store is None:
            return None
        try:
            tracker = await self.tracker_store.retrieve(sender_id)
        except Exception as exc:  # no tracker store: run the turn (a duplicate beats a silence)
            logger.warning(
                "tracker of %s unavailable (%s): the message is processed again", sender_id, exc
            )
            return None
        return bot_messages_after(tracker.events if tracker else [], message_id)

    # ---- Rasa plumbing -------------------------------------------------------------------------
    def get_output_channel(self) -> Optional[OutputChannel]:
        return WeComOutput(RoutingReply(self.services))

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
            return response.json({"status": "ok", "surfaces": self.host.intake.surfaces()})

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

    async def _webhook(self, request: Request, surface: str) -> HTTPResponse:
        started = time.perf_counter()
        args = {key: request.args.get(key) for key in request.args}
        answer = await self.host.intake.handle(
            surface, request.method, args, request.body or b"", request.ip
        )
        return response.text(
            answer.text,
            status=answer.status,
            content_type=answer.content_type,
            headers={HANDLE_MS_HEADER: f"{(time.perf_counter() - started) * 1000:.2f}"},
        )

    async def _kick_from_intake(self, request: Request) -> HTTPResponse:
        """The stand-alone intake server stored messages for these senders: work them off. The
        body names senders only (nothing is taken from it but whom to look at in the inbox).
        Only the intake may call it: with WECOM_INBOX_TOKEN set, the request must carry it;
        without, only loopback callers are served."""
        from bot.settings import get_settings

        if not inbox_caller_allowed(
            request.headers.get(INBOX_TOKEN_HEADER), request.ip, get_settings().wecom_inbox_token
        ):
            return response.text("forbidden", status=403)
        try:
            senders = (request.json or {}).get("senders") or []
        except Exception:
            return response.text("JSON body expected", status=400)
        if (
            not isinstance(senders, list)
            or len(senders) > 1000
            or not all(isinstance(x, str) and 0 < len(x) <= 128 for x in senders)
        ):
            return response.text("senders: a list of sender ids expected", status=400)
        dispatcher = self._pipeline()
        for sender_id in dict.fromkeys(senders):
            dispatcher.kick(sender_id)
        return response.json({"kicked": len(set(senders))})


def bot_messages_after(events, message_id: str) -> Optional[List[Message]]:
    """Output-channel messages of the turn that answered user message `message_id` (the
    BotUttered events up to the next user message), or None when the message is not there."""
    from rasa.shared.core.events import BotUttered, UserUttered

    messages: Optional[List[Message]] = None
    for event in events:
        if isinstance(event, UserUttered):
            if messages is not None:
                break
            if event.message_id == message_id:
                messages = []
        elif messages is not None and isinstance(event, BotUttered):
            data = event.data or {}
            message: Message = {"text": event.text or ""}
            for key in ("buttons", "image", "custom"):
                if data.get(key):
                    message[key] = data[key]
            if message.get("text") or len(message) > 1:
                messages.append(message)
    return messages

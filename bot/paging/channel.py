"""Paging inside the Rasa server process, as a Rasa input channel (credentials.yml:
`bot.paging.channel.PagingChannel:`). It has no webhook of its own; when the server starts it

- registers the advisors' command handler with the WeCom channel's app surface
  (`bot.wecom.app.register_app_handler`): 接单 / 接管 / 备注 / 解决 / 交还 / 队列 / 帮助;
- puts a guest-message hook in front of the WeCom channel's hand-over to Rasa: a 1-5 answer to a
  rating request is stored (and thanked) instead of reaching the NLU, and while an advisor has
  taken a guest over, what the guest writes is also forwarded to the advisor in the app
  (微信客服 guests excepted: the advisor already sees them in 微信客服). Rasa still records every
  message (a paused conversation records, it does not answer).

The policy is validated here too; if it is invalid the bot runs without paging commands and the
log says exactly what to fix (the worker refuses to start with the same message).
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response

log = logging.getLogger(__name__)

WECOM_CHANNEL = "wecom"


def guest_hook(service, forward: Callable[[UserMessage], Awaitable[Any]]):
    """Wrap a channel's `on_new_message` with the rating / forwarding checks."""

    async def on_new_message(message: UserMessage) -> Any:
        text = message.text or ""
        sender = message.sender_id
        if text and not text.startswith("/"):
            try:
                thanks = await service.maybe_record_rating(sender, text)
            except Exception:
                log.exception("rating check for %s failed; passing the message to Rasa", sender)
                thanks = None
            if thanks:
                await message.output_channel.send_text_message(sender, thanks)
                return None
            try:
                await service.forward_guest_message(sender, text)
            except Exception:
                log.exception("forwarding %s's message to the advisor failed", sender)
        return await forward(message)

    on_new_message.paging_hook = True  # type: ignore[attr-defined]
    return on_new_message


def attach(app, service=None) -> Optional[object]:
    """Install the handler and the hook on the app's WeCom channel; returns the service."""
    from bot.paging.runtime import build_service
    from bot.wecom.app import register_app_handler

    channels = getattr(app.ctx, "input_channels", None) or []
    wecom = next((c for c in channels if c.name() == WECOM_CHANNEL), None)
    if wecom is None:
        log.warning("no WeCom channel in credentials.yml: advisors' paging commands are off")
        return None
    if service is None:
        try:
            service = build_service(services=wecom.services)
        except Exception as exc:
            log.error("advisors' paging commands are OFF: %s", exc)
            return None
    register_app_handler(service.on_app_message)
    current = getattr(wecom, "on_new_message", None)
    if current is not None and not getattr(current, "paging_hook", False):
        wecom.on_new_message = guest_hook(service, current)
    log.info("paging attached to the WeCom channel (policy %s)", service.policy.source)
    return service


class PagingChannel(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return "paging"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("paging_hooks", __name__)

        @bp.listener("after_server_start")
        async def _attach(app, loop) -> None:
            attach(app)

        @bp.route("/", methods=["GET"])
        async def health(_request):
            return response.json({"status": "ok"})

        return bp

"""`Messenger` on the real plumbing: the project's WeCom client (bot.wecom: app messages, group
robot, its outbox and rate limits) for staff, Rasa's API for guests.

Send results: `sent` and `duplicate` (the outbox already has it) are delivered; `deferred` and
`retry` mean the outbox holds the message and its retry loop (the connector's sweep) sends it, so
the step counts as handed over; `dead` and anything else raise `SendFailed` and the paging step
is retried with its own back-off. A dedupe key names the step and recipient
(`sla:<step>:<target>:<userid>`): a step re-run after its worker died finds its sends in the
outbox (`duplicate`, not sent again), while a retry after a `dead` send sends it afresh (the
outbox revives a dead row asked for again).
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

from bot.paging.handoff import RasaAPI, RasaUnavailable
from bot.paging.pager import SendFailed

log = logging.getLogger(__name__)

HANDED_OVER = ("sent", "duplicate", "deferred", "retry")
# Pages go out with WeCom's duplicate check: the outbox re-sends a page whose first send may have
# reached WeCom (a timeout, a worker killed before it recorded 'sent'), and WeCom then delivers
# it once. Every legitimate page differs in content (its link names its step, see
# bot.paging.pager.page_card), so the longest interval WeCom allows (4 h) costs nothing and
# covers a re-send the rate limit held back for up to an hour.
PAGE_DUPLICATE_CHECK_S = 4 * 3600


def _check(result, what: str) -> None:
    status = getattr(result, "status", None)
    if status in HANDED_OVER:
        if status != "sent":
            log.info("%s: %s (the WeCom outbox has it)", what, status)
        return
    raise SendFailed(f"{what}: {status or result!r}")


class WeComMessenger:
    def __init__(
        self, rasa: Optional[RasaAPI] = None, *, services=None, guest_output_channel: str = "wecom"
    ):
        self.rasa = rasa or RasaAPI()
        self._services = services
        self.guest_output_channel = guest_output_channel

    @property
    def services(self):
        if self._services is not None:
            return self._services
        from bot.wecom.services import get_services

        return get_services()

    async def app_textcard(
        self, userid: str, title: str, description: str, url: str, btntxt: str, *, dedupe_key: str
    ) -> None:
        result = await self.services.app.send_textcard(
            userid,
            title,
            description,
            url,
            btntxt,
            dedupe_key=dedupe_key,
            duplicate_check_s=PAGE_DUPLICATE_CHECK_S,
        )
        _check(result, f"textcard to {userid}")

    async def app_text(self, userid: str, text: str, *, dedupe_key: Optional[str] = None) -> None:
        result = await self.services.app.send_text(userid, text, dedupe_key=dedupe_key)
        _check(result, f"app text to {userid}")

    async def group_post(
        self, webhook: str, text: str, mention: Sequence[str], *, dedupe_key: str
    ) -> None:
        from bot.wecom.messages import ROBOT_TEXT_MAX_BYTES, truncate_utf8

        s = self.services
        body = {"msgtype": "text", "text": {"content": truncate_utf8(text, ROBOT_TEXT_MAX_BYTES)}}
        if mention:
            body["text"]["mentioned_list"] = list(mention)
        key = webhook.split("key=", 1)[-1].split("&", 1)[0]
        result = await s.robot_client.send(
            webhook,
            body,
            recipient=f"robot:{key[:8]}",
            dedupe_key=dedupe_key,
            auth=False,
            limiter=s.robot_limiter,
            limiter_keys=(f"robot:{key}",),
            max_wait_s=3.0,
        )
        _check(result, "group robot post")

    async def guest_text(self, sender_id: str, text: str, *, dedupe_key: str) -> None:
        try:
            await self.rasa.say(sender_id, text, output_channel=self.guest_output_channel)
        except RasaUnavailable as exc:
            raise SendFailed(f"guest notice to {sender_id}: {exc}") from None

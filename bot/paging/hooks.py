"""Paging in the conversation, without Rasa: the guest hook (a 1-5 answer to a rating request is
stored and thanked instead of reaching the NLU; while an advisor has taken a guest over, what the
guest writes is also forwarded to the advisor in the app, 微信客服 guests excepted since the
advisor sees them there). The Rasa server's composition root (bot.wiring) attaches it to the WeCom
channel together with the advisors' commands (`PagingService.on_app_message`)."""

from __future__ import annotations

import logging
from typing import Optional

log = logging.getLogger(__name__)


def paging_guest_hook(service):
    """`(sender_id, text) -> thanks or None` (bot.wecom.delivery.turns.GuestHook)."""

    async def paging_hook(sender_id: str, text: str) -> Optional[str]:
        try:
            thanks = await service.maybe_record_rating(sender_id, text)
        except Exception:
            log.exception("rating check for %s failed; passing the message on", sender_id)
            thanks = None
        if thanks:
            return thanks
        try:
            await service.forward_guest_message(sender_id, text)
        except Exception:
            log.exception("forwarding %s's message to the advisor failed", sender_id)
        return None

    return paging_hook

"""The T+7 survey's answer in conversation, without Rasa: a guest hook the Rasa server's
composition root (bot.wiring) attaches to the WeCom channel. A guest who owes a survey answer and
writes a score ("9分", "还行吧 7", "很差") gets it stored and answered by `NpsService`; any other
message goes on to the conversation untouched. A failing check never loses the message."""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

log = logging.getLogger(__name__)


def nps_guest_hook(nps):
    """`(sender_id, text) -> the survey's answer or None` (bot.wecom.delivery.turns.GuestHook)."""

    async def nps_hook(sender_id: str, text: str) -> Optional[str]:
        try:
            return await asyncio.to_thread(nps.maybe_record, sender_id, text)
        except Exception:
            log.exception("NPS check for %s failed; passing the message on", sender_id)
            return None

    return nps_hook


def build_nps():
    """The NpsService on the configured database and marketing policy."""
    from bot.crm.db import as_engine
    from bot.marketing.nps import NpsService
    from bot.marketing.policy import load_policy

    return NpsService(as_engine(None), review_url=load_policy().review_url)

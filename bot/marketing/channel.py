"""The T+7 survey's answer in conversation: a hook in front of the WeCom channel's hand-over to
Rasa (installed by `bot.paging.channel.attach` when the Rasa server starts). A guest who owes
a survey answer and writes a score ("9分", "还行吧 7", "很差") gets it stored and answered by
`NpsService`; any other message goes on to Rasa untouched. A failing check never loses the
message: it is passed on."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)


def nps_hook(nps, forward: Callable[[Any], Awaitable[Any]]):
    async def on_new_message(message) -> Any:
        text = message.text or ""
        if text and not text.startswith("/"):
            try:
                reply = await asyncio.to_thread(nps.maybe_record, message.sender_id, text)
            except Exception:
                log.exception("NPS check for %s failed; passing the message on", message.sender_id)
                reply = None
            if reply:
                await message.output_channel.send_text_message(message.sender_id, reply)
                return None
        return await forward(message)

    on_new_message.nps_hook = True  # type: ignore[attr-defined]
    return on_new_message


def attach_nps(channel, nps=None) -> bool:
    """Wrap `channel.on_new_message` once; builds the NpsService from settings if not given."""
    current = getattr(channel, "on_new_message", None)
    if current is None or getattr(current, "nps_hook", False):
        return False
    if nps is None:
        try:
            from bot.crm.db import as_engine
            from bot.marketing.nps import NpsService
            from bot.marketing.policy import load_policy

            nps = NpsService(as_engine(None), review_url=load_policy().review_url)
        except Exception as exc:
            log.error("NPS answers are not understood in conversation: %s", exc)
            return False
    channel.on_new_message = nps_hook(nps, current)
    return True

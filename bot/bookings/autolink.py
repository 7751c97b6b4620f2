"""Linking a WeCom guest to their booking profile from WeCom's own data, on first contact.

When a guest first writes as an external contact (a `wm…`/`wo…` id: 微信客服 or a group member),
`AutoLinker.maybe_link` asks `externalcontact/get` once per sender and process: a `unionid`, or
a `remark_mobiles` entry an advisor noted, that matches exactly one profile with bookings links
the sender to it (`IdentityLinker.auto_link`). Nothing found, several candidates, not a contact,
or WeCom/CRM unavailable: nothing happens (the conversation can still link), and it is logged.
It runs in the background of the first message, never delaying a reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Optional

from bot.bookings.identity import IdentityLinker

log = logging.getLogger(__name__)

GetContact = Callable[[str], Awaitable[Optional[object]]]


class AutoLinker:
    def __init__(self, linker: IdentityLinker, get_contact: GetContact):
        self.linker = linker
        self.get_contact = get_contact
        self._seen: set[str] = set()

    def schedule(self, sender_id: str, external_userid: Optional[str]) -> None:
        """Start `maybe_link` in the background, once per sender in this process."""
        if (
            not external_userid
            or not external_userid.startswith(("wm", "wo"))
            or sender_id in self._seen
        ):
            return
        self._seen.add(sender_id)
        asyncio.ensure_future(self.maybe_link(sender_id, external_userid))

    async def maybe_link(self, sender_id: str, external_userid: str) -> Optional[str]:
        try:
            if await asyncio.to_thread(self.linker.is_linked, sender_id):
                return None
            contact = await self.get_contact(external_userid)
            if contact is None:
                return None
            data = {
                "external_contact": {"unionid": getattr(contact, "unionid", "") or None},
                "follow_user": [
                    {"remark_mobiles": list(f.remark_mobiles)}
                    for f in getattr(contact, "follow_user", ())
                ],
            }
            profile = await asyncio.to_thread(self.linker.auto_link, sender_id, data)
        except Exception as exc:  # WeCom or the CRM down: linking can still happen in chat
            log.warning("auto-link of %s skipped: %s", sender_id, exc)
            return None
        if profile:
            log.info("%s linked to profile %s from externalcontact", sender_id, profile)
        return profile

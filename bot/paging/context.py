"""The guest card a page shows: CRM profile (name, tier, tags) and the last messages the guest
wrote (from Rasa's tracker, best effort: a page never waits long for them, nor fails without them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional

from bot.paging.pager import SENSITIVE_CATEGORIES, GuestCard

log = logging.getLogger(__name__)

LastMessages = Callable[[str, int], Awaitable[list]]


class GuestContext:
    """Builds `GuestCard`s from the CRM store (sync, run in a thread) and a last-messages source."""

    def __init__(
        self,
        crm=None,
        last_messages: Optional[LastMessages] = None,
        *,
        messages: int = 3,
        timeout_s: float = 2.0,
        cache_s: float = 10.0,
    ):
        self.crm = crm
        self.last_messages = last_messages
        self.messages = messages
        self.timeout_s = timeout_s
        self.cache_s = cache_s  # a burst of pages about one guest reads the profile once
        self._cache: dict = {}

    def _profile(self, sender_id: str) -> GuestCard:
        if self.crm is None:
            return GuestCard(sender_id=sender_id, name=sender_id)
        guest = self.crm.find_guest(sender_id)
        if guest is None:
            return GuestCard(sender_id=sender_id, name=sender_id)
        tags = []
        sensitive = False
        for tag in self.crm.tags(sender_id):
            if tag.category in SENSITIVE_CATEGORIES:
                sensitive = True
                continue
            tags.append(tag.value)
        channel = (
            "kf"
            if getattr(guest, "kf_external_userid", None)
            else "wecom"
            if getattr(guest, "wecom_external_userid", None)
            else ""
        )
        return GuestCard(
            sender_id=sender_id,
            name=guest.display_name or "客人",
            tier=guest.tier or "普通",
            tags=tuple(dict.fromkeys(tags)),
            has_sensitive_notes=sensitive or bool(getattr(guest, "health_notes", None)),
            channel=channel,
        )

    async def audit_sent(self, userid: str, clock, step: str) -> None:
        """Record that a page showed `userid` this case's guest card (name, tier, tags, last
        messages). Best effort on purpose: an audit outage must not stop an SLA page."""
        if self.crm is None:
            return
        from bot.audit import Staff, staff_read_async

        try:
            await staff_read_async(
                self.crm,
                Staff("advisor", userid),
                "case.page",
                clock.subject_type,
                clock.subject_id,
                lambda: None,
                detail={
                    "case": clock.id,
                    "step": step,
                    "fields": ["name", "tier", "tags", "summary", "last_messages"],
                },
            )
        except Exception as exc:
            log.error("case #%s: the page to %s was not audited: %s", clock.id, userid, exc)

    async def card(self, sender_id: str) -> GuestCard:
        hit = self._cache.get(sender_id)
        if hit and hit[0] > time.monotonic():
            card = hit[1]
        else:
            try:
                card = await asyncio.to_thread(self._profile, sender_id)
                if len(self._cache) > 1000:
                    self._cache.clear()
                self._cache[sender_id] = (time.monotonic() + self.cache_s, card)
            except Exception as exc:  # the CRM is down: page anyway, with what we know
                log.warning("guest profile for %s unavailable for the page: %s", sender_id, exc)
                card = GuestCard(sender_id=sender_id, name=sender_id)
        if self.last_messages is None:
            return card
        try:
            messages = await asyncio.wait_for(
                self.last_messages(sender_id, self.messages), self.timeout_s
            )
        except Exception as exc:
            log.info("last messages of %s unavailable for the page: %s", sender_id, exc)
            return card
        return GuestCard(**{**card.__dict__, "last_messages": tuple(messages)})

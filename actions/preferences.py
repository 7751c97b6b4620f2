"""Preference tags from what the guest says ("我们是来度蜜月的，老公对海鲜过敏，想要高楼层").
Thin: `bot.preferences.service.PreferenceService` extracts, stores, mirrors and confirms.
A tag that points at a property fact (pets -> the pet policy) is followed by that fact."""

from __future__ import annotations

import logging
from typing import Text

from rasa_sdk import Action

from actions._common import call, say
from actions._flows import flows, text_of, write_or_queue
from bot.crm.store import StoreUnavailable
from bot.preferences.service import OP_RECORD
from bot.services import get_services

log = logging.getLogger(__name__)


class ActionRecordPreferences(Action):
    def name(self) -> Text:
        return "action_record_preferences"

    async def run(self, dispatcher, tracker, domain):
        f = flows()
        text = text_of(tracker)
        at = f.preferences.now()
        reply = await write_or_queue(
            dispatcher,
            f,
            f.preferences.record,
            tracker.sender_id,
            text,
            at=at,
            queue=[(OP_RECORD, tracker.sender_id, {"text": text, "at": at.isoformat()})],
        )
        amenity = reply.slots.get("preference_amenity") if reply is not None else None
        if amenity:
            try:
                answer = await call(
                    get_services().pretrip.answer, "amenity", tracker.sender_id, amenity=amenity
                )
            except StoreUnavailable:
                return []
            except Exception:  # the tags are stored; the extra answer is a courtesy
                log.exception("amenity follow-up failed")
                return []
            say(dispatcher, answer)
        return []

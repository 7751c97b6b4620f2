"""Privacy requests (PIPL): stop marketing at once; ask for the data to be deleted.
Thin: `bot.privacy.PrivacyService` writes the consent / deletion ticket and words the reply."""

from __future__ import annotations

from typing import Text

from rasa_sdk import Action

from actions._flows import flows, text_of, write_or_queue
from bot.privacy import OP_DELETION, OP_UNSUBSCRIBE


class ActionUnsubscribe(Action):
    def name(self) -> Text:
        return "action_unsubscribe"

    async def run(self, dispatcher, tracker, domain):
        f = flows()
        await write_or_queue(
            dispatcher,
            f,
            f.privacy.unsubscribe,
            tracker.sender_id,
            queue=[(OP_UNSUBSCRIBE, tracker.sender_id, {})],
        )
        return []


class ActionRequestDataDeletion(Action):
    def name(self) -> Text:
        return "action_request_data_deletion"

    async def run(self, dispatcher, tracker, domain):
        f = flows()
        text = text_of(tracker)
        await write_or_queue(
            dispatcher,
            f,
            f.privacy.request_deletion,
            tracker.sender_id,
            text,
            queue=[(OP_DELETION, tracker.sender_id, {"text": text})],
        )
        return []

"""Praise: thanked, and recorded (it feeds the NPS picture later)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from bot.crm.store import CRMStore
from bot.orders.when import china_now
from bot.replies import Reply

OP_PRAISE = "feedback.praise"

THANKS_TEXT = "谢谢您的认可！您的好评我已经记录下来了，这对我们的团队很重要😊 有什么需要随时找我。"


@dataclass
class PraiseService:
    store: CRMStore
    now: Callable[[], dt.datetime] = china_now

    def record(self, sender_id: str, text: str) -> Reply:
        """Store the praise as guest feedback. Raises StoreUnavailable."""
        self.store.get_or_create_guest(sender_id)
        bookings = self.store.upcoming_bookings(sender_id, self.now().date())
        feedback = self.store.record_feedback(
            sender_id, kind="praise", text=text, booking_id=bookings[0].id if bookings else None
        )
        return Reply.of(THANKS_TEXT, record_ids={"feedback": feedback.id})

    def apply_spooled(self, entry: dict) -> None:
        self.record(entry["sender_id"], entry["payload"]["text"])

"""A human advisor on request: record the handoff and tell the guest the expected wait.

Triggers (the actions decide): the guest asks ("转人工"), two NLU fallbacks in a row, strong
anger, a major incident, or the guest asking for a person in the middle of a complaint. One open
handoff per guest: asking again while one is requested/active does not create a second one.
The paging issue makes an advisor actually join (it pages on the handoff's `human_request` clock);
this module only writes the record and sets the guest's expectation from the SLA policy.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from bot.crm.store import CRMStore
from bot.orders.when import CHINA_TZ, china_now
from bot.replies import Reply
from bot.sla_terms import HUMAN_REQUEST, SlaTerms, default_terms

log = logging.getLogger(__name__)

OP_REQUEST = "handoff.request"
REASONS = ("request_human", "fallback", "anger", "major_incident", "complaint")


@dataclass
class HandoffService:
    store: CRMStore
    kb: Any = None
    terms: SlaTerms = field(default_factory=default_terms)
    now: Callable[[], dt.datetime] = china_now

    def request(
        self, sender_id: str, reason: str = "request_human", *, lead_in: Optional[str] = None
    ) -> Reply:
        """Create the handoff (or find the open one) and say how long the wait is.
        Raises StoreUnavailable."""
        if reason not in REASONS:
            raise ValueError(f"unknown handoff reason {reason!r}")
        self.store.get_or_create_guest(sender_id)
        existing = self.store.open_handoff(sender_id)
        property_id, front_desk = self._property(sender_id)
        if existing is not None:
            minutes = max(1, int((self.now() - existing.created_at).total_seconds() // 60))
            text = (
                f"已经在为您安排顾问了（{minutes}分钟前已提交），请再稍等一下，"
                "顾问接入后会直接在这里回复您。"
            )
            return Reply.of(lead_in, text, record_ids={"handoff": existing.id})
        handoff = self.store.create_handoff(sender_id, reason=reason, sla_class=HUMAN_REQUEST)
        promise = self.terms.promise(HUMAN_REQUEST, property_id, self.now())
        if promise.in_service_hours:
            wait = f"预计{promise.ack_text}内会有顾问接入" if promise.ack_text else "顾问会尽快接入"
            text = (
                f"好的，已为您转接人工顾问，{wait}，请稍等。顾问会先看我们的聊天记录，"
                "您不用再重复说明；有补充也可以直接发在这里。"
            )
        else:
            opening = ""
            if promise.next_opening is not None:
                local = promise.next_opening.astimezone(CHINA_TZ)
                opening = (
                    f"，顾问会在{local.month}月{local.day}日 {local:%H:%M} 上班后第一时间联系您"
                )
            hours = f"（服务时间 {promise.service_hours}）" if promise.service_hours else ""
            text = f"现在是人工服务时间以外{hours}，已为您登记{opening}。"
            if front_desk:
                text += f"如果比较急，可以直接拨打酒店前台电话 {front_desk}。"
        return Reply.of(lead_in, text, record_ids={"handoff": handoff.id})

    def apply_spooled(self, entry: dict) -> None:
        self.store.get_or_create_guest(entry["sender_id"])
        if self.store.open_handoff(entry["sender_id"]) is None:
            self.store.create_handoff(
                entry["sender_id"], reason=entry["payload"]["reason"], sla_class=HUMAN_REQUEST
            )

    def _property(self, sender_id: str) -> tuple[Optional[str], Optional[str]]:
        bookings = self.store.upcoming_bookings(sender_id, self.now().date())
        if not bookings:
            return None, None
        property_id = bookings[0].property_id
        front_desk = None
        if self.kb is not None:
            prop = self.kb.property(property_id)
            if prop is not None and prop.emergency is not None:
                front_desk = prop.emergency.front_desk
        return property_id, front_desk


def consecutive_fallbacks(events: list[dict], fallback_intent: str = "nlu_fallback") -> int:
    """How many of the guest's latest messages in a row the NLU did not understand (the current
    one included), read from tracker events. Bot turns and actions between them do not break
    the run; any understood message does."""
    count = 0
    for event in reversed(events or []):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != fallback_intent:
            break
        count += 1
    return count

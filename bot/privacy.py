"""The guest's own data (PIPL, 个人信息保护法): opting out of marketing, and asking for deletion.

- `unsubscribe`: the marketing consent is withdrawn at once (a new row in the consent history,
  source "guest_message"), audited, and the guest is told so. Service messages about their own
  trip and orders are not marketing and go on: no service is refused for declining marketing.
- `request_deletion`: marketing stops at once too, and a `data_deletion` ticket is opened (SLA
  class `data_deletion`). Deleting a profile is irreversible and must be the guest themselves, so
  an advisor verifies the identity first and then runs the deletion (`CRMStore.delete_guest`,
  which logs it); the bot never deletes on a chat message alone. Asking again while a request is
  open gives the same request back, not a second one.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Callable

from bot.crm.store import CRMStore
from bot.orders.when import china_now
from bot.replies import Reply
from bot.sla_terms import DATA_DELETION, SlaTerms, default_terms

log = logging.getLogger(__name__)

OP_UNSUBSCRIBE = "privacy.unsubscribe"
OP_DELETION = "privacy.deletion"
MARKETING = "marketing"
SOURCE = "guest_message"


@dataclass
class PrivacyService:
    store: CRMStore
    terms: SlaTerms = field(default_factory=default_terms)
    now: Callable[[], dt.datetime] = china_now

    def unsubscribe(self, sender_id: str) -> Reply:
        self._withdraw(sender_id, "consent.withdraw")
        return Reply.of(
            "好的，已为您退订营销消息，从现在起不会再给您推送活动和优惠信息。"
            "您的行程和订单相关的服务通知不受影响，有需要随时找我。"
        )

    def request_deletion(self, sender_id: str, text: str = "") -> Reply:
        self._withdraw(sender_id, "consent.withdraw")
        open_request = next(
            (
                t
                for t in self.store.tickets(sender_id)
                if t.kind == "data_deletion" and t.status in ("open", "acknowledged")
            ),
            None,
        )
        if open_request is not None:
            return Reply.of(
                f"您的删除申请已经在处理中了（编号 {open_request.id}），顾问核实身份后会完成删除并通知您。",
                record_ids={"ticket": open_request.id},
            )
        ticket = self.store.create_ticket(
            sender_id,
            kind="data_deletion",
            category="privacy",
            severity="routine",
            description=text or None,
            sla_class=DATA_DELETION,
        )
        self.store.record_audit(
            f"guest:{sender_id}", "deletion.request", "guest", sender_id, {"ticket_id": ticket.id}
        )
        promise = self.terms.promise(DATA_DELETION)
        contact = f"{promise.ack_text}内" if promise.ack_text else "尽快"
        done = f"，{promise.resolve_text}内完成" if promise.resolve_text else ""
        return Reply.of(
            f"收到，已为您提交删除个人信息的申请（编号 {ticket.id}），营销消息也已经为您停止。"
            f"为保护您的信息安全，顾问会在{contact}联系您核实是您本人，核实后删除您在我们这里的个人资料、偏好标签和订单记录{done}，"
            "完成后会通知您。法律法规要求保存的记录（比如已开具的发票）会依法保存。",
            record_ids={"ticket": ticket.id},
        )

    def apply_spooled(self, entry: dict) -> None:
        if entry["op"] == OP_UNSUBSCRIBE:
            self._withdraw(entry["sender_id"], "consent.withdraw")
        else:
            self.request_deletion(entry["sender_id"], entry["payload"].get("text", ""))

    def _withdraw(self, sender_id: str, action: str) -> None:
        self.store.get_or_create_guest(sender_id)
        if self.store.has_consent(sender_id, MARKETING) or not self.store.consents(sender_id):
            self.store.set_consent(sender_id, MARKETING, False, source=SOURCE)
            self.store.record_audit(
                f"guest:{sender_id}", action, "guest", sender_id, {"purpose": MARKETING}
            )

"""Complaints: empathy first, classify, open the ticket with the first message (its SLA clock
starts then), say who acts and by when, and add what the guest tells afterwards.

    triage(text)  -> empathy + a ticket at once (the worker starts its clock and pages) + one of:
        major incident      (major, complaint_major) + handoff, no questions
        strong anger        (routine, complaint_routine) + handoff, no questions
        routine             who acts and by when; route "ask": the complaint form asks where /
                            since when, but only what the first message did not already say
    submit(details) -> the answers are added to that ticket (found again by its first message)
    escalate(details) -> the guest asked for a person mid-complaint: same ticket + handoff

A guest who complains and then goes quiet is still heard: the ticket exists from the first line.
Never argues, never promises compensation: what the hotel offers is the advisor's decision (SPEC:
over-compensation for service failures, an alternative plan for force majeure) and the bot says
only that the advisor will propose it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from bot.complaints.classifier import FORCE_MAJEURE, MAJOR, Classification, ComplaintClassifier
from bot.crm.store import CRMStore
from bot.handoff import HandoffService
from bot.orders.when import china_now
from bot.replies import Reply
from bot.sla_terms import COMPLAINT_MAJOR, COMPLAINT_ROUTINE, SlaTerms, default_terms

log = logging.getLogger(__name__)

OP_OPEN = "complaints.open"
OP_ENRICH = "complaints.enrich"
ROUTE_ASK = "ask_details"
ROUTE_DONE = "handed_off"


@dataclass(frozen=True)
class Details:
    """What the conversation knows about one complaint (the form's slots)."""

    text: str
    category: Optional[str] = None
    nature: Optional[str] = None
    location: Optional[str] = None
    since: Optional[str] = None

    def as_payload(self) -> dict:
        return {
            "text": self.text,
            "category": self.category,
            "nature": self.nature,
            "location": self.location,
            "since": self.since,
        }


@dataclass
class ComplaintService:
    store: CRMStore
    handoff: HandoffService
    classifier: ComplaintClassifier = field(default_factory=ComplaintClassifier)
    kb: Any = None
    terms: SlaTerms = field(default_factory=default_terms)
    now: Callable[[], dt.datetime] = china_now

    # ---- first message ---------------------------------------------------------------------
    def triage(self, sender_id: str, text: str) -> Reply:
        """Classify and act. The reply's slots carry the route and what is already known.
        Raises StoreUnavailable only for major/angry complaints (they write at once)."""
        c = self.classifier.classify(text)
        slots = {
            "complaint_text": text,
            "complaint_category": c.category,
            "complaint_nature": c.nature,
            "complaint_location": c.location,
            "complaint_since": c.since,
        }
        if c.severity == MAJOR:
            return self._major(sender_id, text, c, slots)
        if c.angry:
            details = Details(text, c.category, c.nature, c.location, c.since)
            ticket = self._open_ticket(sender_id, details, severity="routine")
            handoff = self.handoff.request(sender_id, "anger")
            return Reply(
                texts=(
                    f"{c.empathy}我完全理解您现在的心情，这件事我马上请顾问直接和您沟通处理"
                    f"（投诉编号 {ticket.id}）。",
                    *handoff.texts,
                ),
                slots={**slots, "complaint_route": ROUTE_DONE},
                record_ids={"ticket": ticket.id, **handoff.record_ids},
            )
        details = Details(text, c.category, c.nature, c.location, c.since)
        ticket = self._open_ticket(sender_id, details, severity="routine")
        return Reply(
            texts=(c.empathy, self._who_and_when(sender_id, details, ticket.id)),
            slots={**slots, "complaint_route": ROUTE_ASK},
            record_ids={"ticket": ticket.id},
        )

    def _major(self, sender_id: str, text: str, c: Classification, slots: dict) -> Reply:
        details = Details(text, c.category, c.nature, c.location, c.since)
        ticket = self._open_ticket(sender_id, details, severity=MAJOR)
        promise = self.terms.promise(COMPLAINT_MAJOR, self._property_id(sender_id), self.now())
        within = f"{promise.ack_text}内" if promise.ack_text else "马上"
        lines = [
            f"{c.empathy}您的安全最重要。我已经立即通知值班经理和应急团队（事件编号 {ticket.id}），"
            f"{within}会有人联系您，之后会持续和您同步进展。",
            "如果有人受伤或有危险，请先拨打 120（急救）或 110（报警）。",
        ]
        if c.nature == FORCE_MAJEURE:
            lines[0] += "顾问会帮您准备替代方案。"
        handoff = self.handoff.request(sender_id, "major_incident")
        return Reply(
            texts=(*lines, *handoff.texts),
            slots={**slots, "complaint_route": ROUTE_DONE},
            record_ids={"ticket": ticket.id, **handoff.record_ids},
        )

    # ---- after the questions ------------------------------------------------------------------
    def submit(self, sender_id: str, details: Details) -> Reply:
        """Add the answers to the ticket the first message opened. Raises StoreUnavailable."""
        ticket = self._ticket_for(sender_id, details)
        added = [x for x in (details.location, details.since) if x and x != "不清楚"]
        text = (
            f"谢谢，这些情况我已经补充到投诉 {ticket.id} 里，顾问处理时会看到。"
            if added
            else f"没关系，顾问会按投诉 {ticket.id} 先处理，有需要会再和您确认。"
        )
        return Reply.of(text, record_ids={"ticket": ticket.id})

    def escalate(self, sender_id: str, details: Details) -> Reply:
        """The guest wants a person before the questions are done: keep what they said."""
        ticket = self._ticket_for(sender_id, details)
        handoff = self.handoff.request(sender_id, "complaint")
        return Reply(
            texts=(
                f"好的，您反映的情况已经登记（投诉编号 {ticket.id}），顾问会接着处理，"
                "您不用再从头说一遍。",
                *handoff.texts,
            ),
            record_ids={"ticket": ticket.id, **handoff.record_ids},
        )

    def apply_spooled(self, entry: dict) -> None:
        payload = dict(entry["payload"])
        severity = payload.pop("severity", "routine")
        details = Details(**payload)
        if entry.get("op") == OP_ENRICH:
            self._ticket_for(entry["sender_id"], details)
        else:
            self._open_ticket(entry["sender_id"], details, severity=severity)

    # ---- helpers -------------------------------------------------------------------------------
    def classify(self, text: str) -> Classification:
        return self.classifier.classify(text)

    def _open_ticket(self, sender_id: str, details: Details, *, severity: str):
        if details.category is None or details.nature is None:
            c = self.classifier.classify(details.text)
            details = Details(
                details.text,
                details.category or c.category,
                details.nature or c.nature,
                details.location,
                details.since,
            )
        self.store.get_or_create_guest(sender_id)
        booking = self._booking(sender_id)
        return self.store.create_ticket(
            sender_id,
            kind="complaint",
            category=details.category,
            severity=severity,
            nature=details.nature,
            description=details.text,
            location=(details.location or None) and details.location[:128],
            since_text=(details.since or None) and details.since[:64],
            sla_class=COMPLAINT_MAJOR if severity == MAJOR else COMPLAINT_ROUTINE,
            booking_id=booking.id if booking is not None else None,
        )

    def _ticket_for(self, sender_id: str, details: Details):
        """The ticket the first message opened, with the answers added; opened now if it is
        missing (it was queued while the CRM was down and never replayed, or was closed)."""
        ticket = self.store.open_complaint(sender_id, details.text)
        if ticket is None:
            return self._open_ticket(sender_id, details, severity="routine")
        location = details.location if details.location != "不清楚" else None
        since = details.since if details.since != "不清楚" else None
        return self.store.enrich_ticket(
            ticket.id,
            location=location,
            since_text=since,
            category=details.category,
            nature=details.nature,
        )

    def _booking(self, sender_id: str):
        bookings = self.store.upcoming_bookings(sender_id, self.now().date())
        return bookings[0] if bookings else None

    def _property_id(self, sender_id: str) -> Optional[str]:
        booking = self._booking(sender_id)
        return booking.property_id if booking is not None else None

    def _who_and_when(self, sender_id: str, details: Details, ticket_id: int) -> str:
        promise = self.terms.promise(COMPLAINT_ROUTINE, self._property_id(sender_id), self.now())
        first = f"{promise.ack_text}内" if promise.ack_text else "尽快"
        text = f"已经为您登记（投诉编号 {ticket_id}），值班顾问会在{first}联系您"
        if promise.resolve_text:
            text += f"，{promise.resolve_text}内给您处理方案"
        text += "。"
        if details.nature == FORCE_MAJEURE:
            text += "顾问也会帮您准备替代方案。"
        else:
            text += "这件事会有顾问专门跟进到底。"
        return text + "给您添麻烦了，再次向您道歉。"

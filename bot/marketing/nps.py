"""The T+7 survey's answer, understood in conversation: "9分", "还行吧 7", "十分满意", "很差".

A guest with a survey sent in the last `ANSWER_WINDOW` and not yet answered who writes a score
gets it stored (`feedback` kind nps, with their words, on the stay's booking) and the touchpoint
run marked answered. 0-6 (detractor) opens a `service_recovery` ticket in the routine complaint
SLA class, so the paging worker pages an advisor under its SLA at once; the guest is told who
acts and by when. 9-10 (promoter) gets the review invitation. Anything that is not a score
returns None and the message goes on to the bot as usual.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Optional

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.crm import models as cm
from bot.crm.db import make_session_factory, session_scope
from bot.marketing.models import TouchpointRun
from bot.marketing.touchpoints import TEMPLATE_DIR
from bot.sla_terms import COMPLAINT_ROUTINE, SlaTerms

ANSWER_WINDOW = dt.timedelta(days=14)
_CN_NUM = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
}
# Words without a number: what they most plausibly mean on a 0-10 scale.
_WORDS = [
    (re.compile(r"(非常|特别|超级?|很|挺)?(满意|完美|超赞|很棒|太棒|好极了|推荐)"), None),
    (re.compile(r"(很差|太差|非常差|特别差|极差|糟糕|垃圾|失望|再也不|不会推荐|差劲)"), 2),
    (re.compile(r"^(一般|还行|凑合|马马虎虎|普通)"), 6),
]
_NUMBER = re.compile(
    r"(?<![\d.])(10|[0-9])(?![\d.])\s*(分|星)?|([零〇一二两三四五六七八九十])\s*分"
)
_TOO_LONG = 60  # a long message is a conversation, not a score


def parse_nps(text: str) -> Optional[int]:
    """0-10 from a natural reply, or None when it is not a score."""
    if not text:
        return None
    clean = unicodedata.normalize("NFKC", text).strip()
    if not clean or len(clean) > _TOO_LONG:
        return None
    clean = re.sub(r"(满分\s*(10|十)\s*分?|10分制|十分制|满分)", "", clean)
    if "十分" in clean and re.search(r"十分(满意|好|棒|推荐|愿意)", clean):
        return 10  # 十分满意 is "very satisfied", not a score of ten, but means the top
    numbers = []
    for m in _NUMBER.finditer(clean):
        if m.group(1) is not None:
            numbers.append(int(m.group(1)))
        else:
            numbers.append(_CN_NUM[m.group(3)])
    if len(numbers) == 1:
        return numbers[0]
    if len(numbers) > 1:
        return None  # "7到8分", "3个人10点": ambiguous, let the bot handle it
    bare = re.fullmatch(r"[零〇一二两三四五六七八九十]", clean)
    if bare:
        return _CN_NUM[clean]
    for pattern, score in _WORDS:
        match = pattern.search(clean)
        if match:
            if score is None:
                negated = re.search(r"不(太)?(满意|推荐)", clean)
                return (
                    2 if negated else 10 if match.group(1) in ("非常", "特别", "超", "超级") else 9
                )
            return score
    return None


def band(score: int) -> str:
    return "detractor" if score <= 6 else "promoter" if score >= 9 else "passive"


@dataclass
class NpsService:
    engine: Engine
    terms: SlaTerms = field(default_factory=SlaTerms)
    review_url: Optional[str] = None
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)

    def __post_init__(self) -> None:
        self._factory = make_session_factory(self.engine)
        self._env = Environment(
            loader=FileSystemLoader(str(TEMPLATE_DIR)),
            undefined=StrictUndefined,
            autoescape=False,
            lstrip_blocks=True,
            trim_blocks=True,
        )

    def maybe_record(self, sender_id: str, text: str) -> Optional[str]:
        """If `sender_id` owes a survey answer and `text` is a score: store it, act on it, and
        return the reply for the guest; else None (the message goes to the bot)."""
        score = parse_nps(text)
        if score is None:
            return None
        now = self.clock()
        with session_scope(self._factory) as s:
            guest = s.execute(
                select(cm.Guest).where(cm.Guest.sender_id == sender_id)
            ).scalar_one_or_none()
            if guest is None:
                return None
            stmt = (
                select(TouchpointRun)
                .where(
                    TouchpointRun.guest_id == guest.id,
                    TouchpointRun.kind == "t_plus_7",
                    TouchpointRun.status == "sent",
                    TouchpointRun.answered_at.is_(None),
                    TouchpointRun.fired_at >= now - ANSWER_WINDOW,
                )
                .order_by(TouchpointRun.fired_at.desc())
                .limit(1)
            )
            if s.bind.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)  # two messages at once: one wins
            run = s.execute(stmt).scalar_one_or_none()
            if run is None:
                return None
            run.answered_at = now
            s.add(
                cm.Feedback(
                    guest_id=guest.id,
                    booking_id=run.booking_id,
                    kind="nps",
                    score=score,
                    text=text,
                    created_at=now,
                )
            )
            ticket_id = None
            property_id = None
            if band(score) == "detractor":
                booking = s.get(cm.Booking, run.booking_id) if run.booking_id else None
                property_id = booking.property_id if booking else None
                ticket = cm.Ticket(
                    guest_id=guest.id,
                    booking_id=run.booking_id,
                    kind="service_recovery",
                    category="nps_detractor",
                    severity="routine",
                    nature="service_failure",
                    description=f"NPS {score}: {text}",
                    sla_class=COMPLAINT_ROUTINE,
                    status="open",
                    created_at=now,
                )
                s.add(ticket)
                s.flush()
                ticket_id = ticket.id
            s.add(
                cm.AuditLog(
                    actor=f"guest:{sender_id}",
                    action="nps.answer",
                    subject_type="guest",
                    subject_id=sender_id,
                    detail={"score": score, "ticket_id": ticket_id},
                )
            )
        who_when = "顾问会尽快"
        if ticket_id is not None:
            promise = self.terms.promise(COMPLAINT_ROUTINE, property_id)
            if promise.ack_text:
                who_when = f"顾问会在{promise.ack_text}内"
        text_out = self._env.get_template("nps_thanks.j2").render(
            band=band(score),
            score=score,
            ticket_id=ticket_id,
            who_when=who_when,
            review_url=self.review_url,
        )
        return "\n".join(line.strip() for line in text_out.splitlines() if line.strip())

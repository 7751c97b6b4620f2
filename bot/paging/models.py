"""Tables of the paging module, on the CRM's declarative Base (one schema, one migration history:
bot/crm/migrations/versions/0003_paging.py creates them).

- `sla_clocks`: one per ticket / order / handoff that has an SLA class, created when the subject
  is first seen (by the worker within a second, or at once by `PagingService.start_clock`). Its id
  is the *case number* advisors type (接单 12). It holds the deadlines fixed at creation, who was
  paged, who acknowledged / took over / resolved and when, and the guest's rating.
- `sla_steps`: every step of every clock, with its due time, written with the clock. The worker
  claims due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL), moves them pending → firing (a
  compare-and-set: exactly one claimer wins) → sent/skipped/failed. `UNIQUE(subject_type,
  subject_id, step)` is the last guard: a step cannot exist twice, so it cannot be sent twice.
  Notices created by advisors' actions (guest told who took it, resolved + rating request) are
  steps too, so they are delivered exactly once and retried like pages.
- `sla_notes`: advisors' notes, resolutions, relayed messages, the guest's rating comment.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)

from bot.crm.crypto import EncryptedText
from bot.crm.models import Base, UTCDateTime, utcnow

PAGING_TABLES = ("sla_clocks", "sla_steps", "sla_notes")


class SlaClock(Base):
    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("subject_type", "subject_id"),
        Index("ix_sla_clocks_state", "state"),
        Index("ix_sla_clocks_guest_id", "guest_id"),
    )

    id = Column(Integer, primary_key=True)
    subject_type = Column(String(16), nullable=False)  # ticket | order | handoff
    subject_id = Column(Integer, nullable=False)
    guest_id = Column(Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False)
    sender_id = Column(String(128), nullable=False)
    sla_class = Column(String(32), nullable=False)
    property_id = Column(String(64), nullable=False)
    summary = Column(EncryptedText)  # what is asked, one line (the guest's words: encrypted)
    created_at = Column(UTCDateTime, nullable=False)  # the subject's creation time
    started_at = Column(UTCDateTime, nullable=False)
    ack_due_at = Column(UTCDateTime, nullable=False)
    resolve_due_at = Column(UTCDateTime)
    state = Column(String(16), nullable=False, default="running")
    paged_userid = Column(String(64))
    assignee_userid = Column(String(64))
    acknowledged_at = Column(UTCDateTime)
    acknowledged_by = Column(String(64))
    takeover_userid = Column(String(64))  # advisor talking to the guest (bot paused)
    takeover_at = Column(UTCDateTime)
    handed_back_at = Column(UTCDateTime)
    resolved_at = Column(UTCDateTime)
    resolved_by = Column(String(64))
    resolution = Column(EncryptedText)
    rating = Column(Integer)
    rated_at = Column(UTCDateTime)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class SlaStep(Base):
    __tablename__ = "sla_steps"
    __table_args__ = (
        UniqueConstraint("subject_type", "subject_id", "step"),
        Index("ix_sla_steps_status_due_at", "status", "due_at"),
        Index("ix_sla_steps_clock_id", "clock_id"),
    )

    id = Column(Integer, primary_key=True)
    clock_id = Column(Integer, ForeignKey("sla_clocks.id", ondelete="CASCADE"), nullable=False)
    subject_type = Column(String(16), nullable=False)
    subject_id = Column(Integer, nullable=False)
    step = Column(String(32), nullable=False)
    notify = Column(JSON, nullable=False)  # list of targets
    until = Column(String(8), nullable=False, default="ack")
    due_at = Column(UTCDateTime, nullable=False)
    status = Column(String(12), nullable=False, default="pending")
    late = Column(Boolean)
    claimed_by = Column(String(64))
    lease_until = Column(UTCDateTime)
    attempts = Column(Integer, nullable=False, default=0)
    fired_at = Column(UTCDateTime)
    recipients = Column(JSON)  # who it went to, e.g. ["app:advisor_li", "group:应急处理群"]
    delivered = Column(JSON)  # targets already delivered (a retry skips them)
    error = Column(Text)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)


class SlaNote(Base):
    __tablename__ = "sla_notes"
    __table_args__ = (Index("ix_sla_notes_clock_id", "clock_id"),)

    id = Column(Integer, primary_key=True)
    clock_id = Column(Integer, ForeignKey("sla_clocks.id", ondelete="CASCADE"), nullable=False)
    author = Column(String(64), nullable=False)  # advisor userid, or "guest"
    kind = Column(String(16), nullable=False)  # note | resolution | relay | rating
    text = Column(EncryptedText, nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

"""Tables of the admins' training loop, on the CRM's declarative Base (one schema, one migration
history: bot/crm/migrations/versions/0006_training.py creates them).

- `nlu_inbox_items`: one row per group of near-identical misunderstood texts (what an admin
  labels or discards). `status` open → labelled | discarded.
- `nlu_inbox_messages`: every collected guest message, in its item, keyed by the tracker event it
  came from (collecting twice adds nothing). The guest is kept only as `sender_hash` (a keyed
  hash of the sender id) so that erasing a guest can delete their messages without the inbox
  ever storing or showing who wrote them. Text and context are encrypted at rest like the CRM's.
- `nlu_inbox_cursor`: how far the collector has read each tracker store's `events` table.
- `model_versions`: the model registry (file, data hash, config, figures, who, how long).
- `model_deployments`: every deploy/rollback, newest last; the newest row is what runs.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)

from bot.crm.crypto import EncryptedText
from bot.crm.models import Base, UTCDateTime, utcnow

TRAINING_TABLES = (
    "nlu_inbox_items",
    "nlu_inbox_messages",
    "nlu_inbox_cursor",
    "model_versions",
    "model_deployments",
)
ITEM_STATUSES = ("open", "labelled", "discarded")
VERSION_STATUSES = ("queued", "training", "evaluating", "ready", "failed")


class InboxItem(Base):
    __tablename__ = "nlu_inbox_items"
    __table_args__ = (Index("ix_nlu_inbox_items_status", "status"),)

    id = Column(Integer, primary_key=True)
    group_key = Column(String(64), nullable=False)  # sha256 of the first text's comparison key
    text = Column(EncryptedText, nullable=False)  # the first text seen (normalised, masked)
    status = Column(String(12), nullable=False, default="open")
    label = Column(JSON)  # {"intent": ..., "entities": [...], "file": ...} once labelled
    decided_by = Column(String(128))
    decided_at = Column(UTCDateTime)
    first_seen = Column(UTCDateTime, nullable=False, default=utcnow)
    last_seen = Column(UTCDateTime, nullable=False, default=utcnow)


class InboxMessage(Base):
    __tablename__ = "nlu_inbox_messages"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        Index("ix_nlu_inbox_messages_item_id", "item_id"),
        Index("ix_nlu_inbox_messages_sender_hash", "sender_hash"),
    )

    id = Column(Integer, primary_key=True)
    item_id = Column(Integer, ForeignKey("nlu_inbox_items.id", ondelete="CASCADE"), nullable=False)
    source = Column(String(32), nullable=False)  # which tracker store (cursor name)
    event_id = Column(Integer, nullable=False)  # the user event's id in that store
    sender_hash = Column(String(64), nullable=False)
    text = Column(EncryptedText, nullable=False)  # normalised, numbers masked
    reasons = Column(JSON, nullable=False)  # ["fallback", "low_confidence", "rephrase", ...]
    intent = Column(String(64))
    confidence = Column(Float)
    ranking = Column(JSON)  # [[intent, confidence], ...] top alternatives
    context = Column(EncryptedText)  # JSON: [{"who": "guest"|"bot"|"advisor", "text": ...}]
    said_at = Column(UTCDateTime, nullable=False)
    collected_at = Column(UTCDateTime, nullable=False, default=utcnow)


class InboxCursor(Base):
    __tablename__ = "nlu_inbox_cursor"

    source = Column(String(32), primary_key=True)
    last_event_id = Column(Integer, nullable=False, default=0)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id = Column(Integer, primary_key=True)
    version = Column(String(40), nullable=False, unique=True)
    status = Column(String(12), nullable=False, default="queued")
    path = Column(Text)  # the model archive
    fingerprint = Column(String(64))  # Rasa's model_id (what GET /status reports)
    data_hash = Column(String(64))
    config = Column(Text)  # config.yml as trained
    figures = Column(JSON)  # held-out evaluation (bot.nlu.evaluate summary, trimmed)
    created_by = Column(String(128), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    train_seconds = Column(Float)
    eval_seconds = Column(Float)
    error = Column(Text)
    note = Column(Text)


class ModelDeployment(Base):
    __tablename__ = "model_deployments"

    id = Column(Integer, primary_key=True)
    version = Column(String(40), nullable=False)
    previous_version = Column(String(40))
    action = Column(String(12), nullable=False)  # deploy | rollback
    actor = Column(String(128), nullable=False)
    override_reason = Column(Text)
    replicas = Column(JSON, nullable=False)  # {url: "ok" | error}
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

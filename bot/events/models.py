"""`conversation_events`: one row per tracker event Rasa published (bot.events.consumer fills it;
migration 0013_conversation_events creates it).

`event_key` is a hash of the whole event body (sender, type, timestamp and the rest), unique: a
broker redelivery, or the same event published twice, inserts nothing. `id` grows in the order
the consumer committed, which is the order the NLU inbox collector reads (its cursor). Guests'
words (`data`, the event as Rasa published it) are encrypted at rest like the CRM's; the columns
the reports count on (type, intent, action, time, sender) stay plain. Erasure deletes a guest's
rows by `sender_id` (bot.erasure sweeps every table with that column); retention drops rows older
than RETENTION_TRACKER_DAYS (bot.retention)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String

from bot.crm.crypto import EncryptedText
from bot.crm.models import Base, UTCDateTime, utcnow


class ConversationEvent(Base):
    __tablename__ = "conversation_events"
    __table_args__ = (
        Index("ix_conversation_events_sender_id", "sender_id", "id"),
        Index("ix_conversation_events_type_time", "type_name", "timestamp"),
    )

    id = Column(Integer, primary_key=True)
    event_key = Column(String(64), nullable=False, unique=True)
    sender_id = Column(String(255), nullable=False)
    type_name = Column(String(64), nullable=False)
    timestamp = Column(Float, nullable=False)  # Rasa's own (epoch seconds)
    intent_name = Column(String(255))
    confidence = Column(Float)
    action_name = Column(String(255))
    slot_name = Column(String(255))  # slot events: which slot (its value is in `data`)
    data = Column(EncryptedText)  # the event body as JSON (texts, parse data, slot values)
    received_at = Column(UTCDateTime, nullable=False, default=utcnow)


class EventBackfillCursor(Base):
    """How far bot.events.backfill has read a tracker store's `events` table (by its id)."""

    __tablename__ = "event_backfill_cursor"

    source = Column(String(32), primary_key=True)  # which tracker store ("rasa")
    last_event_id = Column(Integer, nullable=False, default=0)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)

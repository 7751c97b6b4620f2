"""Durable tables of the WeCom channel, on the CRM's declarative Base (one schema, one migration
history: bot/crm/migrations/versions/0002_wecom_channel.py creates them).

- `wecom_inbox`: every accepted inbound message/event, written *before* WeCom gets its 200, with a
  unique dedupe key (MsgId, or sender+CreateTime+Event...) so retries and replays collapse; rows
  stay `pending` until Rasa has handled them, so a process that dies in between loses nothing.
- `wecom_kf_cursor`: the 微信客服 sync_msg cursor per open_kfid, advanced in the same transaction
  that stores the page of messages it covers; plus the last callback Token.
- `wecom_kf_quota`: the 5-messages-in-48-hours budget per guest.
- `wecom_outbox`: the send log. A unique dedupe key per reply (inbox id + index) means a message
  reprocessed after a crash is not answered twice; failed sends wait here for retry or end `dead`.
- `wecom_menu_payload`: 菜单消息 ids -> Rasa button payloads too long for a 64-byte menu id.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Text, UniqueConstraint

from bot.crm.crypto import EncryptedJSON
from bot.crm.models import Base, UTCDateTime, utcnow

INBOX_STATUSES = ("pending", "processing", "done", "failed", "ignored", "recalled")
OUTBOX_STATUSES = ("sending", "sent", "retry", "dead", "suppressed", "quota_exhausted")


class InboxMessage(Base):
    __tablename__ = "wecom_inbox"

    id = Column(Integer, primary_key=True)
    dedupe_key = Column(String(160), nullable=False)
    surface = Column(String(8), nullable=False)  # kf | aibot | app
    sender_id = Column(String(128), nullable=False)
    kind = Column(String(32), nullable=False)  # text, image, event:enter_session, ...
    payload = Column(EncryptedJSON, nullable=False)  # the guest's message: encrypted at rest
    status = Column(String(12), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    lease_until = Column(UTCDateTime)
    received_at = Column(UTCDateTime, nullable=False, default=utcnow)
    processed_at = Column(UTCDateTime)
    error = Column(Text)

    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        Index("ix_wecom_inbox_status_sender", "status", "sender_id", "id"),
    )


class KfCursor(Base):
    __tablename__ = "wecom_kf_cursor"

    open_kfid = Column(String(64), primary_key=True)
    cursor = Column(String(128))
    callback_token = Column(String(256))
    token_received_at = Column(UTCDateTime)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class KfQuota(Base):
    __tablename__ = "wecom_kf_quota"

    open_kfid = Column(String(64), primary_key=True)
    external_userid = Column(String(64), primary_key=True)
    last_guest_msg_at = Column(UTCDateTime, nullable=False)
    sent_count = Column(Integer, nullable=False, default=0)
    exhausted_at = Column(UTCDateTime)


class OutboxMessage(Base):
    __tablename__ = "wecom_outbox"

    id = Column(Integer, primary_key=True)
    app = Column(String(8), nullable=False)  # kf | app | aibot | robot
    path = Column(String(1024), nullable=False)
    body = Column(EncryptedJSON, nullable=False)  # what we sent (guests' names, words)
    recipient = Column(String(128))
    dedupe_key = Column(String(160))
    status = Column(String(16), nullable=False, default="sending")
    attempts = Column(Integer, nullable=False, default=0)
    errcode = Column(Integer)
    errmsg = Column(Text)
    next_attempt_at = Column(UTCDateTime)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        Index("ix_wecom_outbox_status_due", "status", "next_attempt_at"),
        Index("ix_wecom_outbox_recipient", "recipient"),
    )


class MenuPayload(Base):
    __tablename__ = "wecom_menu_payload"

    menu_id = Column(String(64), primary_key=True)
    payload = Column(Text, nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)


WECOM_TABLES = [t.__table__ for t in (InboxMessage, KfCursor, KfQuota, OutboxMessage, MenuPayload)]

"""Tables of the marketing module, on the CRM's declarative Base (migration
bot/crm/migrations/versions/0005_marketing.py creates them).

- `campaigns`: one broadcast: its segment and template (as validated at creation), surface,
  schedule and status. Workers claim a due campaign with a compare-and-set on `status`
  (scheduled → sending), after `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two workers never
  both send it.
- `campaign_recipients`: one row per guest (or customer group) a send looked at, with the text it
  got, the advisor whose WeCom task carries it, and what became of it (or why it was left out).
- `campaign_tasks`: one `add_msg_template` call (one WeCom task pushed to one advisor): its
  msgid, how many recipients, whether the advisor confirmed, reminders sent today.
- `mass_sends`: the ledger the caps are counted on: one row per marketing message a customer
  (or group) was given, whatever sent it (campaign or touchpoint).
- `touchpoint_runs`: each automatic touchpoint fired (or skipped) for a guest and occasion;
  `UNIQUE(guest_id, kind, occasion)` means it can be inserted, and so sent, only once.
- `touchpoint_settings`: a marketer turned a touchpoint off (or back on) for one property.
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

from bot.crm.models import Base, UTCDateTime, utcnow

CAMPAIGN_STATUSES = ("scheduled", "sending", "sent", "cancelled", "failed")
RECIPIENT_STATUSES = (
    "left_out",
    "queued",
    "sent",
    "not_contact",
    "limit",
    "failed",
    "cancelled",
    "unknown",
)
TASK_STATUSES = ("creating", "created", "confirmed", "cancelled", "failed", "unknown")


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_status_scheduled_at", "status", "scheduled_at"),)

    id = Column(Integer, primary_key=True)
    name = Column(String(128), nullable=False)
    kind = Column(String(16), nullable=False, default="one_off")  # member_day | one_off
    surface = Column(String(8), nullable=False, default="single")  # single | group | kf
    segment = Column(JSON, nullable=False)
    template = Column(Text, nullable=False)
    attachments = Column(JSON, nullable=False, default=list)
    chat_ids = Column(JSON, nullable=False, default=list)  # surface group: the customer groups
    status = Column(String(16), nullable=False, default="scheduled")
    scheduled_at = Column(UTCDateTime, nullable=False)
    created_by = Column(String(64), nullable=False)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    claimed_by = Column(String(128))
    claimed_at = Column(UTCDateTime)
    sent_at = Column(UTCDateTime)
    cancelled_at = Column(UTCDateTime)
    error = Column(Text)


class CampaignRecipient(Base):
    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "target"),
        Index("ix_campaign_recipients_task_id", "task_id"),
    )

    id = Column(Integer, primary_key=True)
    campaign_id = Column(Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    guest_id = Column(Integer, ForeignKey("guests.id", ondelete="CASCADE"))
    target = Column(String(128), nullable=False)  # external_userid, chat id, or guest:<id>
    advisor_userid = Column(String(64))
    task_id = Column(Integer, ForeignKey("campaign_tasks.id", ondelete="SET NULL"))
    text = Column(Text)
    status = Column(String(16), nullable=False)
    reason = Column(String(32))
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class CampaignTask(Base):
    __tablename__ = "campaign_tasks"

    id = Column(Integer, primary_key=True)
    campaign_id = Column(
        Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False, index=True
    )
    advisor_userid = Column(String(64))
    chat_type = Column(String(8), nullable=False)
    msgid = Column(String(128))
    recipients = Column(Integer, nullable=False, default=0)
    status = Column(String(16), nullable=False, default="creating")
    fail_list = Column(JSON, nullable=False, default=list)
    reminders_day = Column(String(10))  # China date of the last reminder
    reminders = Column(Integer, nullable=False, default=0)
    error = Column(Text)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class MassSend(Base):
    __tablename__ = "mass_sends"
    __table_args__ = (Index("ix_mass_sends_target_sent_at", "target", "sent_at"),)

    id = Column(Integer, primary_key=True)
    target = Column(String(128), nullable=False)  # guest:<id> or group:<chat id>
    source = Column(String(64), nullable=False)  # campaign:<id> | touchpoint:<kind>
    sent_at = Column(UTCDateTime, nullable=False, default=utcnow)


class TouchpointRun(Base):
    __tablename__ = "touchpoint_runs"
    __table_args__ = (UniqueConstraint("guest_id", "kind", "occasion"),)

    id = Column(Integer, primary_key=True)
    guest_id = Column(Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False)
    booking_id = Column(Integer, ForeignKey("bookings.id", ondelete="SET NULL"))
    kind = Column(String(24), nullable=False)
    occasion = Column(String(64), nullable=False)  # booking id, year, last-stay date...
    status = Column(String(16), nullable=False)  # sending | sent | skipped | failed
    channel = Column(String(16))
    reason = Column(String(64))
    text = Column(Text)
    due_at = Column(UTCDateTime)
    fired_at = Column(UTCDateTime, nullable=False, default=utcnow)
    late = Column(Boolean, nullable=False, default=False)
    answered_at = Column(UTCDateTime)  # the T+7 survey: when the guest's score was stored


class TouchpointSetting(Base):
    __tablename__ = "touchpoint_settings"

    property_id = Column(String(64), primary_key=True)
    kind = Column(String(24), primary_key=True)
    enabled = Column(Boolean, nullable=False)
    updated_by = Column(String(64))
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)

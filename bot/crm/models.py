"""ORM models of the CRM. Only `bot.crm` uses them: everyone else goes through `CRMStore`.

Conventions, so a newcomer can predict every table:
- `id` integer primary keys; children point at `guests.id` with ON DELETE CASCADE, so deleting a
  guest (PIPL erasure) removes everything personal in one statement. The audit log keeps no FK:
  it must outlive what it describes.
- Every timestamp is a timezone-aware UTC `datetime` in Python (`UTCDateTime`), stored as
  TIMESTAMPTZ on PostgreSQL and as naive UTC text on SQLite.
- Closed vocabularies (tiers, statuses, ...) are plain strings checked in Python (`@validates`),
  not database enums: later migrations can add a value without rewriting a type or constraint.
- Sensitive fields use `EncryptedText` (Fernet at rest, see `bot.crm.crypto`).
- Constraint names follow `NAMING_CONVENTION`, which Alembic's SQLite batch mode needs.

The schema itself is created by the Alembic migrations in `bot/crm/migrations`, never by
`create_all`; tests check that the models and the migrations agree.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship, validates
from sqlalchemy.types import DateTime, TypeDecorator

from bot.core.db import NAMING_CONVENTION, Base  # noqa: F401 - Base re-exported for the tables
from bot.core.time import utcnow
from bot.crm.crypto import EncryptedText

# ---- vocabularies (extend here; nothing in the database needs to change) ----------------------
TIERS = ("普通", "银卡", "金卡", "铂金", "钻石")
TRIP_PURPOSES = ("商务", "度假", "会议", "亲子", "蜜月", "纪念日")
BOOKING_STATUSES = ("booked", "checked_in", "completed", "cancelled")
ACTIVE_BOOKING_STATUSES = ("booked", "checked_in")
# Bookings that count as a stay for the profile facts (bot.bookings.facts).
STAY_BOOKING_STATUSES = ("checked_in", "completed")
# Kinds of identity a guest profile can have besides its own sender id (bot.bookings.identity).
IDENTITY_KINDS = ("sender", "kf_external_userid", "wecom_external_userid", "unionid")
ORDER_STATUSES = ("requested", "confirmed", "done", "cancelled")
TICKET_KINDS = ("complaint", "data_deletion", "service_recovery", "booking_change")
TICKET_SEVERITIES = ("routine", "major")
TICKET_NATURES = ("service_failure", "force_majeure")
TICKET_STATUSES = ("open", "acknowledged", "resolved", "closed")
HANDOFF_STATUSES = ("requested", "active", "returned")
PAGE_SUBJECTS = ("ticket", "order", "handoff")
FEEDBACK_KINDS = ("praise", "nps")
# Tag categories whose values are health data: stored encrypted (see PreferenceTag).
CENTS = Decimal("0.01")
SENSITIVE_TAG_CATEGORIES = frozenset({"allergy", "health"})


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic filter: leave alone tables in the database that no model declares (Rasa's SQL
    tracker store shares the SQLite file), instead of proposing to drop them."""
    return not (type_ == "table" and reflected and compare_to is None)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, on every backend.

    Naive datetimes are refused on the way in: we cannot know which zone they meant, and a silent
    eight-hour shift (Asia/Shanghai vs UTC) is exactly the bug this type exists to prevent.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(dt.timezone.utc)
        if dialect.name == "sqlite":  # SQLite stores text without an offset: store UTC
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Money(TypeDecorator):
    """CNY with cents, as `Decimal` in Python on every backend. NUMERIC on PostgreSQL; SQLite has
    no decimal type, so there it travels as a float rounded back to cents (amounts stay far
    below where a double loses a cent)."""

    impl = Numeric(14, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(14, 2, asdecimal=False))
        return dialect.type_descriptor(Numeric(14, 2))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(str(value)).quantize(CENTS)
        return float(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(str(value)).quantize(CENTS)


def _check(field: str, value, allowed) -> None:
    if value is not None and value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")


class TimestampMixin:
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class Guest(TimestampMixin, Base):
    """One person, keyed by the stable Rasa sender id; WeCom identities are kept beside it."""

    __tablename__ = "guests"

    id = Column(Integer, primary_key=True)
    sender_id = Column(String(128), nullable=False, unique=True)
    display_name = Column(String(64))
    tier = Column(String(8), nullable=False, default="普通")
    phone = Column(EncryptedText)
    id_number = Column(EncryptedText)  # 身份证号
    passport_number = Column(EncryptedText)
    health_notes = Column(EncryptedText)  # allergies, conditions: free text from staff
    birthday = Column(Date)
    wecom_external_userid = Column(String(64), index=True)
    kf_open_kfid = Column(String(64))
    kf_external_userid = Column(String(64), index=True)
    unionid = Column(String(64), index=True)
    # Keyed digest of the normalised phone (bot.crm.crypto.blind_index): the phone itself is
    # encrypted, so matching an imported booking to a guest by phone goes through this.
    phone_index = Column(String(48), index=True)
    # The advisor whose WeCom contact this guest is (externalcontact follow_user): mass sends
    # to the guest are tasks pushed to this advisor. Loyalty points as the PMS reports them.
    owner_userid = Column(String(64))
    points = Column(Integer, nullable=False, default=0)
    # Why this guest's data must be kept despite an erasure request (None: no hold).
    legal_hold = Column(Text)
    is_demo = Column(Boolean, nullable=False, default=False)

    bookings = relationship(
        "Booking",
        back_populates="guest",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Booking.check_in",
    )
    tags = relationship(
        "PreferenceTag", back_populates="guest", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("tier")
    def _v_tier(self, _key, value):
        _check("tier", value, TIERS)
        return value


class Booking(TimestampMixin, Base):
    """A stay. `property_id` is a key into the knowledge base (e.g. `sanya-haitang-resort`).

    A booking from a PMS/OTA is keyed by (property_id, confirmation_no); `source_version` is the
    PMS's version or updated-at (a sync older than it is ignored) and `content_hash` a digest of
    the imported fields, so an unchanged row is recognised without comparing every column.
    """

    __tablename__ = "bookings"
    __table_args__ = (
        Index("ix_bookings_guest_id_check_in", "guest_id", "check_in"),
        UniqueConstraint("property_id", "confirmation_no"),
    )

    id = Column(Integer, primary_key=True)
    guest_id = Column(Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False)
    property_id = Column(String(64), nullable=False)
    city = Column(String(32))
    check_in = Column(Date, nullable=False)
    check_out = Column(Date, nullable=False)
    room_type = Column(String(32))
    purpose = Column(String(8))
    party_size = Column(Integer, nullable=False, default=1)
    status = Column(String(16), nullable=False, default="booked")
    confirmation_no = Column(String(32))
    channel = Column(String(32))  # 渠道: direct, ctrip, meituan, fliggy, ... as the source says
    amount = Column(Money)  # what the stay costs, in CNY
    notes = Column(EncryptedText)  # 备注 from the PMS: may hold personal details
    source = Column(String(32))  # "import", "sync:<source>", "demo"
    source_version = Column(String(64))
    content_hash = Column(String(64))

    guest = relationship("Guest", back_populates="bookings")

    @validates("purpose")
    def _v_purpose(self, _key, value):
        _check("purpose", value, TRIP_PURPOSES)
        return value

    @validates("status")
    def _v_status(self, _key, value):
        _check("booking status", value, BOOKING_STATUSES)
        return value


class PreferenceTag(TimestampMixin, Base):
    """Something the guest revealed (bed, diet, interest...), with where and how sure we are.

    One row per (guest, category, value): saying it again refreshes the row. For health
    categories (SENSITIVE_TAG_CATEGORIES) `value` holds a keyed digest and the words themselves
    live in `secret_value`, encrypted. `source_message` is the guest's own words: encrypted too.
    """

    __tablename__ = "preference_tags"
    __table_args__ = (UniqueConstraint("guest_id", "category", "value"),)

    id = Column(Integer, primary_key=True)
    guest_id = Column(Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False)
    category = Column(String(32), nullable=False)
    value = Column(String(128), nullable=False)
    secret_value = Column(EncryptedText)
    source_message = Column(EncryptedText)
    confidence = Column(Float, nullable=False, default=1.0)
    active = Column(Boolean, nullable=False, default=True)

    guest = relationship("Guest", back_populates="tags")

    @property
    def plain_value(self) -> str:
        return self.secret_value if self.secret_value is not None else self.value


class Order(TimestampMixin, Base):
    """An add-on (airport pickup, diving, spa, late check-out...) the guest asked for."""

    __tablename__ = "orders"

    id = Column(Integer, primary_key=True)
    guest_id = Column(
        Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    booking_id = Column(Integer, ForeignKey("bookings.id", ondelete="SET NULL"), index=True)
    property_id = Column(String(64))
    item = Column(String(64), nullable=False)
    scheduled_at = Column(UTCDateTime)
    party_size = Column(Integer)
    flight_no = Column(String(16))
    notes = Column(EncryptedText)  # free text from the guest or staff
    status = Column(String(16), nullable=False, default="requested")
    sla_class = Column(String(32))

    @validates("status")
    def _v_status(self, _key, value):
        _check("order status", value, ORDER_STATUSES)
        return value


class Ticket(Base):
    """A complaint, a data-deletion request or a service-recovery case, with its SLA class."""

    __tablename__ = "tickets"

    id = Column(Integer, primary_key=True)
    guest_id = Column(
        Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    booking_id = Column(Integer, ForeignKey("bookings.id", ondelete="SET NULL"))
    kind = Column(String(24), nullable=False)
    category = Column(String(32))
    severity = Column(String(16), nullable=False, default="routine")
    nature = Column(String(24))
    description = Column(EncryptedText)  # the guest's own words
    location = Column(String(128))
    since_text = Column(String(64))
    sla_class = Column(String(32))
    status = Column(String(16), nullable=False, default="open")
    rating = Column(Integer)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    resolved_at = Column(UTCDateTime)

    @validates("kind", "severity", "nature", "status")
    def _v_vocab(self, key, value):
        _check(
            f"ticket {key}",
            value,
            {
                "kind": TICKET_KINDS,
                "severity": TICKET_SEVERITIES,
                "nature": TICKET_NATURES,
                "status": TICKET_STATUSES,
            }[key],
        )
        return value


class Handoff(Base):
    """The guest asked for (or was given) a human advisor; the bot is silent while `active`."""

    __tablename__ = "handoffs"

    id = Column(Integer, primary_key=True)
    guest_id = Column(
        Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    reason = Column(String(64), nullable=False)
    status = Column(String(16), nullable=False, default="requested")
    sla_class = Column(String(32))
    advisor_userid = Column(String(64))
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    accepted_at = Column(UTCDateTime)
    returned_at = Column(UTCDateTime)

    @validates("status")
    def _v_status(self, _key, value):
        _check("handoff status", value, HANDOFF_STATUSES)
        return value


class Page(Base):
    """One notification step to an advisor about a ticket/order/handoff (minimal on purpose:
    the paging module extends it with its own migration)."""

    __tablename__ = "pages"
    __table_args__ = (Index("ix_pages_subject", "subject_type", "subject_id"),)

    id = Column(Integer, primary_key=True)
    subject_type = Column(String(16), nullable=False)
    subject_id = Column(Integer, nullable=False)
    step = Column(String(32), nullable=False)
    recipient = Column(String(64))
    due_at = Column(UTCDateTime)
    sent_at = Column(UTCDateTime)
    acknowledged_at = Column(UTCDateTime)
    status = Column(String(16), nullable=False, default="pending")
    attempt = Column(Integer, nullable=False, default=0)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    @validates("subject_type")
    def _v_subject(self, _key, value):
        _check("page subject_type", value, PAGE_SUBJECTS)
        return value


class Feedback(Base):
    """What a guest said about us that is not a complaint: praise in chat, later NPS answers.
    The guest's words are encrypted like tag sources; rows go with the guest (PIPL erasure)."""

    __tablename__ = "feedback"

    id = Column(Integer, primary_key=True)
    guest_id = Column(
        Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    booking_id = Column(Integer, ForeignKey("bookings.id", ondelete="SET NULL"))
    kind = Column(String(16), nullable=False)
    score = Column(Integer)
    text = Column(EncryptedText)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    @validates("kind")
    def _v_kind(self, _key, value):
        _check("feedback kind", value, FEEDBACK_KINDS)
        return value


class Consent(Base):
    """Append-only consent history: the newest row for (guest, purpose) is the one in force."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_guest_id_purpose", "guest_id", "purpose"),)

    id = Column(Integer, primary_key=True)
    guest_id = Column(Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False)
    purpose = Column(String(32), nullable=False)
    granted = Column(Boolean, nullable=False)
    source = Column(String(64))
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)


class AuditLog(Base):
    """Who did what to which record (PIPL: staff profile access, deletions). Never updated."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject", "subject_type", "subject_id"),)

    id = Column(Integer, primary_key=True)
    actor = Column(String(64), nullable=False)
    action = Column(String(64), nullable=False)
    subject_type = Column(String(32))
    subject_id = Column(String(128))
    detail = Column(JSON)
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)


class GuestIdentity(Base):
    """One more way to recognise a guest profile: another Rasa sender id (the same person on
    微信客服 and in a group), a WeCom external userid or a unionid. Unique per (kind, value):
    an identity belongs to one profile."""

    __tablename__ = "guest_identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id = Column(Integer, primary_key=True)
    guest_id = Column(
        Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind = Column(String(32), nullable=False)
    value = Column(String(128), nullable=False)
    source = Column(String(64))  # "conversation", "advisor:<userid>", "externalcontact", "merge"
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    @validates("kind")
    def _v_kind(self, _key, value):
        _check("identity kind", value, IDENTITY_KINDS)
        return value


class IdentityLinkAttempt(Base):
    """Wrong answers while a WeCom sender tries to prove which profile is theirs; at the limit
    linking is locked until `locked_until`. Keyed by sender id: the guest has no profile yet."""

    __tablename__ = "identity_link_attempts"

    sender_id = Column(String(128), primary_key=True)
    failures = Column(Integer, nullable=False, default=0)
    locked_until = Column(UTCDateTime)
    updated_at = Column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class GuestFacts(Base):
    """Facts derived from a guest's bookings for segments and touchpoints (bot.bookings.facts
    computes them; refreshed on every import/sync that touches the guest). One row per guest."""

    __tablename__ = "guest_facts"

    guest_id = Column(Integer, ForeignKey("guests.id", ondelete="CASCADE"), primary_key=True)
    stays = Column(Integer, nullable=False, default=0)
    nights = Column(Integer, nullable=False, default=0)
    total_spend = Column(Money, nullable=False, default=0)
    spend_12m = Column(Money, nullable=False, default=0)
    first_stay = Column(Date)
    last_stay = Column(Date)
    next_stay = Column(Date)
    cancelled = Column(Integer, nullable=False, default=0)
    birthday = Column(Date)
    tier = Column(String(8))
    channel = Column(String(32))
    channels = Column(JSON)
    properties = Column(JSON)
    as_of = Column(Date, nullable=False)
    computed_at = Column(UTCDateTime, nullable=False, default=utcnow)


NOTICE_STATUSES = ("pending", "sent", "failed", "no_channel")


class GuestNotice(Base):
    """Something the guest must be told once, unasked (their booking was cancelled). `key` makes
    "once" hold across re-imports and replays; the worker delivers pending rows
    (bot.bookings.notices)."""

    __tablename__ = "guest_notices"

    id = Column(Integer, primary_key=True)
    guest_id = Column(
        Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key = Column(String(128), nullable=False, unique=True)
    text = Column(EncryptedText, nullable=False)
    status = Column(String(16), nullable=False, default="pending")
    attempts = Column(Integer, nullable=False, default=0)
    error = Column(String(255))
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)
    sent_at = Column(UTCDateTime)

    @validates("status")
    def _v_status(self, _key, value):
        _check("notice status", value, NOTICE_STATUSES)
        return value


class PmsSyncRequest(Base):
    """A PMS push already taken (bot.bookings.sync): its signature, so a replay within the
    timestamp window is refused instead of being processed twice."""

    __tablename__ = "pms_sync_requests"

    signature = Column(String(64), primary_key=True)
    source = Column(String(64), nullable=False)
    received_at = Column(UTCDateTime, nullable=False, default=utcnow, index=True)


MEDIA_KINDS = ("image", "voice")


class GuestMedia(Base):
    """A photo or a voice message the guest sent, kept as a file (MEDIA_DIR, by sha256) and
    linked to the complaint it belongs to (bot.guest_media). Rows go with the guest (CASCADE)."""

    __tablename__ = "guest_media"

    id = Column(Integer, primary_key=True)
    guest_id = Column(
        Integer, ForeignKey("guests.id", ondelete="CASCADE"), nullable=False, index=True
    )
    ticket_id = Column(Integer, ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    kind = Column(String(16), nullable=False)
    content_type = Column(String(64), nullable=False)
    path = Column(String(255), nullable=False)  # relative to MEDIA_DIR
    size = Column(Integer, nullable=False)
    sha256 = Column(String(64), nullable=False)
    wecom_media_id = Column(String(255))
    created_at = Column(UTCDateTime, nullable=False, default=utcnow)

    @validates("kind")
    def _v_kind(self, _key, value):
        _check("media kind", value, MEDIA_KINDS)
        return value

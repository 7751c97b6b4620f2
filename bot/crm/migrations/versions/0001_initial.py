"""Initial CRM schema: guests, bookings, preference tags, orders, tickets, handoffs, pages,
consents and the audit log.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23

Written against plain SQLAlchemy types (not the model's TypeDecorators) so this file keeps
working whatever happens to the Python classes later:
- timestamps are DateTime(timezone=True): TIMESTAMPTZ on PostgreSQL, text holding UTC on SQLite;
- encrypted columns are TEXT holding Fernet tokens.
Constraint and index names follow models.NAMING_CONVENTION (batch mode on SQLite needs names).
"""

from alembic import op
import sqlalchemy as sa

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)
ENCRYPTED = sa.Text()


def _timestamps():
    return [
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
    ]


def _guest_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["guest_id"], ["guests.id"], ondelete="CASCADE", name=f"fk_{table}_guest_id_guests"
    )


def _booking_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["booking_id"], ["bookings.id"], ondelete="SET NULL", name=f"fk_{table}_booking_id_bookings"
    )


def upgrade() -> None:
    op.create_table(
        "guests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(64)),
        sa.Column("tier", sa.String(8), nullable=False),
        sa.Column("phone", ENCRYPTED),
        sa.Column("id_number", ENCRYPTED),
        sa.Column("passport_number", ENCRYPTED),
        sa.Column("health_notes", ENCRYPTED),
        sa.Column("birthday", sa.Date()),
        sa.Column("wecom_external_userid", sa.String(64)),
        sa.Column("kf_open_kfid", sa.String(64)),
        sa.Column("kf_external_userid", sa.String(64)),
        sa.Column("unionid", sa.String(64)),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_guests"),
        sa.UniqueConstraint("sender_id", name="uq_guests_sender_id"),
    )
    op.create_index("ix_guests_wecom_external_userid", "guests", ["wecom_external_userid"])
    op.create_index("ix_guests_kf_external_userid", "guests", ["kf_external_userid"])
    op.create_index("ix_guests_unionid", "guests", ["unionid"])

    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("property_id", sa.String(64), nullable=False),
        sa.Column("city", sa.String(32)),
        sa.Column("check_in", sa.Date(), nullable=False),
        sa.Column("check_out", sa.Date(), nullable=False),
        sa.Column("room_type", sa.String(32)),
        sa.Column("purpose", sa.String(8)),
        sa.Column("party_size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("confirmation_no", sa.String(32)),
        *_timestamps(),
        _guest_fk("bookings"),
        sa.PrimaryKeyConstraint("id", name="pk_bookings"),
        sa.UniqueConstraint("confirmation_no", name="uq_bookings_confirmation_no"),
    )
    op.create_index("ix_bookings_guest_id_check_in", "bookings", ["guest_id", "check_in"])

    op.create_table(
        "preference_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("secret_value", ENCRYPTED),
        sa.Column("source_message", ENCRYPTED),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_timestamps(),
        _guest_fk("preference_tags"),
        sa.PrimaryKeyConstraint("id", name="pk_preference_tags"),
        sa.UniqueConstraint(
            "guest_id", "category", "value", name="uq_preference_tags_guest_id_category_value"
        ),
    )

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer()),
        sa.Column("property_id", sa.String(64)),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("scheduled_at", UTC_TIMESTAMP),
        sa.Column("party_size", sa.Integer()),
        sa.Column("flight_no", sa.String(16)),
        sa.Column("notes", sa.Text()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sla_class", sa.String(32)),
        *_timestamps(),
        _guest_fk("orders"),
        _booking_fk("orders"),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
    )
    op.create_index("ix_orders_guest_id", "orders", ["guest_id"])
    op.create_index("ix_orders_booking_id", "orders", ["booking_id"])

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer()),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("category", sa.String(32)),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("nature", sa.String(24)),
        sa.Column("description", sa.Text()),
        sa.Column("location", sa.String(128)),
        sa.Column("since_text", sa.String(64)),
        sa.Column("sla_class", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rating", sa.Integer()),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("resolved_at", UTC_TIMESTAMP),
        _guest_fk("tickets"),
        _booking_fk("tickets"),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
    )
    op.create_index("ix_tickets_guest_id", "tickets", ["guest_id"])

    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sla_class", sa.String(32)),
        sa.Column("advisor_userid", sa.String(64)),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("accepted_at", UTC_TIMESTAMP),
        sa.Column("returned_at", UTC_TIMESTAMP),
        _guest_fk("handoffs"),
        sa.PrimaryKeyConstraint("id", name="pk_handoffs"),
    )
    op.create_index("ix_handoffs_guest_id", "handoffs", ["guest_id"])

    op.create_table(
        "pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(64)),
        sa.Column("due_at", UTC_TIMESTAMP),
        sa.Column("sent_at", UTC_TIMESTAMP),
        sa.Column("acknowledged_at", UTC_TIMESTAMP),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pages"),
    )
    op.create_index("ix_pages_subject", "pages", ["subject_type", "subject_id"])

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(64)),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        _guest_fk("consents"),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
    )
    op.create_index("ix_consents_guest_id_purpose", "consents", ["guest_id", "purpose"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(32)),
        sa.Column("subject_id", sa.String(128)),
        sa.Column("detail", sa.JSON()),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["subject_type", "subject_id"])


def downgrade() -> None:
    # Children first; dropping a table drops its indexes on both backends.
    for table in (
        "audit_log",
        "consents",
        "pages",
        "handoffs",
        "tickets",
        "orders",
        "preference_tags",
        "bookings",
        "guests",
    ):
        op.drop_table(table)

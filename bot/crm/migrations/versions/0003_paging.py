"""Paging tables: SLA clocks (one per ticket/order/handoff with an SLA class; the id is the case
number advisors type), their steps (unique per subject and step: the last guard against a page
sent twice) and advisors' notes. Models: bot/paging/models.py.

On PostgreSQL, insert triggers on tickets/orders/handoffs (with an SLA class) and on sla_steps
NOTIFY the channel `concierge_paging`, so the paging worker wakes the moment a complaint is
committed instead of at its next poll. The payload is constant, so PostgreSQL folds the
notifications of one transaction into one.

Revision ID: 0003_paging
Revises: 0002_wecom_channel
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa

revision = "0003_paging"
down_revision = "0002_wecom_channel"
branch_labels = None
depends_on = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)
NOTIFY_TABLES = ("tickets", "orders", "handoffs", "sla_steps")


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("sla_class", sa.String(32), nullable=False),
        sa.Column("property_id", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text()),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("started_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("ack_due_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("resolve_due_at", UTC_TIMESTAMP),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("paged_userid", sa.String(64)),
        sa.Column("assignee_userid", sa.String(64)),
        sa.Column("acknowledged_at", UTC_TIMESTAMP),
        sa.Column("acknowledged_by", sa.String(64)),
        sa.Column("takeover_userid", sa.String(64)),
        sa.Column("takeover_at", UTC_TIMESTAMP),
        sa.Column("handed_back_at", UTC_TIMESTAMP),
        sa.Column("resolved_at", UTC_TIMESTAMP),
        sa.Column("resolved_by", sa.String(64)),
        sa.Column("resolution", sa.Text()),
        sa.Column("rating", sa.Integer()),
        sa.Column("rated_at", UTC_TIMESTAMP),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sla_clocks"),
        sa.ForeignKeyConstraint(
            ["guest_id"], ["guests.id"], ondelete="CASCADE", name="fk_sla_clocks_guest_id_guests"
        ),
        sa.UniqueConstraint(
            "subject_type", "subject_id", name="uq_sla_clocks_subject_type_subject_id"
        ),
    )
    op.create_index("ix_sla_clocks_state", "sla_clocks", ["state"])
    op.create_index("ix_sla_clocks_guest_id", "sla_clocks", ["guest_id"])

    op.create_table(
        "sla_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clock_id", sa.Integer(), nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("notify", sa.JSON(), nullable=False),
        sa.Column("until", sa.String(8), nullable=False),
        sa.Column("due_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("late", sa.Boolean()),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("lease_until", UTC_TIMESTAMP),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("fired_at", UTC_TIMESTAMP),
        sa.Column("recipients", sa.JSON()),
        sa.Column("delivered", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sla_steps"),
        sa.ForeignKeyConstraint(
            ["clock_id"],
            ["sla_clocks.id"],
            ondelete="CASCADE",
            name="fk_sla_steps_clock_id_sla_clocks",
        ),
        sa.UniqueConstraint(
            "subject_type", "subject_id", "step", name="uq_sla_steps_subject_type_subject_id_step"
        ),
    )
    op.create_index("ix_sla_steps_status_due_at", "sla_steps", ["status", "due_at"])
    op.create_index("ix_sla_steps_clock_id", "sla_steps", ["clock_id"])

    op.create_table(
        "sla_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clock_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sla_notes"),
        sa.ForeignKeyConstraint(
            ["clock_id"],
            ["sla_clocks.id"],
            ondelete="CASCADE",
            name="fk_sla_notes_clock_id_sla_clocks",
        ),
    )
    op.create_index("ix_sla_notes_clock_id", "sla_notes", ["clock_id"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION concierge_paging_notify() RETURNS trigger AS $$ "
            "BEGIN PERFORM pg_notify('concierge_paging', 'new'); RETURN NULL; END; "
            "$$ LANGUAGE plpgsql"
        )
        for table in NOTIFY_TABLES:
            condition = "" if table == "sla_steps" else "WHEN (NEW.sla_class IS NOT NULL) "
            op.execute(
                f"CREATE TRIGGER {table}_paging_notify AFTER INSERT ON {table} "
                f"FOR EACH ROW {condition}EXECUTE PROCEDURE concierge_paging_notify()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in NOTIFY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_paging_notify ON {table}")
        op.execute("DROP FUNCTION IF EXISTS concierge_paging_notify()")
    op.drop_index("ix_sla_notes_clock_id", table_name="sla_notes")
    op.drop_table("sla_notes")
    op.drop_index("ix_sla_steps_clock_id", table_name="sla_steps")
    op.drop_index("ix_sla_steps_status_due_at", table_name="sla_steps")
    op.drop_table("sla_steps")
    op.drop_index("ix_sla_clocks_guest_id", table_name="sla_clocks")
    op.drop_index("ix_sla_clocks_state", table_name="sla_clocks")
    op.drop_table("sla_clocks")

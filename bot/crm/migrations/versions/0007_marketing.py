"""Marketing: campaigns, their recipients and WeCom tasks, the mass-send ledger the caps count,
touchpoint runs and per-property touchpoint switches; guests get their owning advisor and points.
Models: bot.marketing.models, bot.crm.models.Guest.

Revision ID: 0007_marketing
Revises: 0006_training
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0007_marketing"
down_revision = "0006_training"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("guests") as batch:
        batch.add_column(sa.Column("owner_userid", sa.String(64)))
        batch.add_column(sa.Column("points", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("surface", sa.String(8), nullable=False),
        sa.Column("segment", sa.JSON(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("chat_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("scheduled_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("claimed_at", TS),
        sa.Column("sent_at", TS),
        sa.Column("cancelled_at", TS),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_campaigns"),
    )
    op.create_index("ix_campaigns_status_scheduled_at", "campaigns", ["status", "scheduled_at"])
    op.create_table(
        "campaign_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("advisor_userid", sa.String(64)),
        sa.Column("chat_type", sa.String(8), nullable=False),
        sa.Column("msgid", sa.String(128)),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fail_list", sa.JSON(), nullable=False),
        sa.Column("reminders_day", sa.String(10)),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_campaign_tasks"),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            ondelete="CASCADE",
            name="fk_campaign_tasks_campaign_id_campaigns",
        ),
    )
    op.create_index("ix_campaign_tasks_campaign_id", "campaign_tasks", ["campaign_id"])
    op.create_table(
        "campaign_recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer()),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("advisor_userid", sa.String(64)),
        sa.Column("task_id", sa.Integer()),
        sa.Column("text", sa.Text()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_campaign_recipients"),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            ondelete="CASCADE",
            name="fk_campaign_recipients_campaign_id_campaigns",
        ),
        sa.ForeignKeyConstraint(
            ["guest_id"],
            ["guests.id"],
            ondelete="CASCADE",
            name="fk_campaign_recipients_guest_id_guests",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["campaign_tasks.id"],
            ondelete="SET NULL",
            name="fk_campaign_recipients_task_id_campaign_tasks",
        ),
        sa.UniqueConstraint(
            "campaign_id", "target", name="uq_campaign_recipients_campaign_id_target"
        ),
    )
    op.create_index("ix_campaign_recipients_task_id", "campaign_recipients", ["task_id"])
    op.create_table(
        "mass_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mass_sends"),
    )
    op.create_index("ix_mass_sends_target_sent_at", "mass_sends", ["target", "sent_at"])
    op.create_table(
        "touchpoint_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer()),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("occasion", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16)),
        sa.Column("reason", sa.String(64)),
        sa.Column("text", sa.Text()),
        sa.Column("due_at", TS),
        sa.Column("fired_at", TS, nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("answered_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_touchpoint_runs"),
        sa.ForeignKeyConstraint(
            ["guest_id"],
            ["guests.id"],
            ondelete="CASCADE",
            name="fk_touchpoint_runs_guest_id_guests",
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            ondelete="SET NULL",
            name="fk_touchpoint_runs_booking_id_bookings",
        ),
        sa.UniqueConstraint(
            "guest_id", "kind", "occasion", name="uq_touchpoint_runs_guest_id_kind_occasion"
        ),
    )
    op.create_table(
        "touchpoint_settings",
        sa.Column("property_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("property_id", "kind", name="pk_touchpoint_settings"),
    )


def downgrade() -> None:
    op.drop_table("touchpoint_settings")
    op.drop_table("touchpoint_runs")
    op.drop_index("ix_mass_sends_target_sent_at", table_name="mass_sends")
    op.drop_table("mass_sends")
    op.drop_index("ix_campaign_recipients_task_id", table_name="campaign_recipients")
    op.drop_table("campaign_recipients")
    op.drop_index("ix_campaign_tasks_campaign_id", table_name="campaign_tasks")
    op.drop_table("campaign_tasks")
    op.drop_index("ix_campaigns_status_scheduled_at", table_name="campaigns")
    op.drop_table("campaigns")
    with op.batch_alter_table("guests") as batch:
        batch.drop_column("points")
        batch.drop_column("owner_userid")

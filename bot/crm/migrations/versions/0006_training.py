"""The admins' training loop: NLU inbox, model registry, deployments.
Models: bot.training.models.

Revision ID: 0006_training
Revises: 0005_bookings_identities
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0006_training"
down_revision = "0005_bookings_identities"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "nlu_inbox_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_key", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("label", sa.JSON()),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", TS),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nlu_inbox_items"),
    )
    op.create_index("ix_nlu_inbox_items_status", "nlu_inbox_items", ["status"])
    op.create_table(
        "nlu_inbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("sender_hash", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("intent", sa.String(64)),
        sa.Column("confidence", sa.Float()),
        sa.Column("ranking", sa.JSON()),
        sa.Column("context", sa.Text()),
        sa.Column("said_at", TS, nullable=False),
        sa.Column("collected_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nlu_inbox_messages"),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["nlu_inbox_items.id"],
            ondelete="CASCADE",
            name="fk_nlu_inbox_messages_item_id_nlu_inbox_items",
        ),
        sa.UniqueConstraint("source", "event_id", name="uq_nlu_inbox_messages_source_event_id"),
    )
    op.create_index("ix_nlu_inbox_messages_item_id", "nlu_inbox_messages", ["item_id"])
    op.create_index("ix_nlu_inbox_messages_sender_hash", "nlu_inbox_messages", ["sender_hash"])
    op.create_table(
        "nlu_inbox_cursor",
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_nlu_inbox_cursor"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("path", sa.Text()),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("data_hash", sa.String(64)),
        sa.Column("config", sa.Text()),
        sa.Column("figures", sa.JSON()),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("train_seconds", sa.Float()),
        sa.Column("eval_seconds", sa.Float()),
        sa.Column("error", sa.Text()),
        sa.Column("note", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("version", name="uq_model_versions_version"),
    )
    op.create_table(
        "model_deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("previous_version", sa.String(40)),
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("override_reason", sa.Text()),
        sa.Column("replicas", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_deployments"),
    )


def downgrade() -> None:
    op.drop_table("model_deployments")
    op.drop_table("model_versions")
    op.drop_table("nlu_inbox_cursor")
    op.drop_index("ix_nlu_inbox_messages_sender_hash", table_name="nlu_inbox_messages")
    op.drop_index("ix_nlu_inbox_messages_item_id", table_name="nlu_inbox_messages")
    op.drop_table("nlu_inbox_messages")
    op.drop_index("ix_nlu_inbox_items_status", table_name="nlu_inbox_items")
    op.drop_table("nlu_inbox_items")

"""Rasa's tracker events as its event broker published them (bot.events.consumer fills it; the
reports and the NLU inbox read it instead of the tracker store). Model:
bot.events.models.ConversationEvent.

Revision ID: 0013_conversation_events
Revises: 0012_pms_sync
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = "0013_conversation_events"
down_revision = "0012_pms_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(64), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("type_name", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("intent_name", sa.String(255)),
        sa.Column("confidence", sa.Float()),
        sa.Column("action_name", sa.String(255)),
        sa.Column("slot_name", sa.String(255)),
        sa.Column("data", sa.Text()),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversation_events"),
        sa.UniqueConstraint("event_key", name="uq_conversation_events_event_key"),
    )
    op.create_index("ix_conversation_events_sender_id", "conversation_events", ["sender_id", "id"])
    op.create_index(
        "ix_conversation_events_type_time", "conversation_events", ["type_name", "timestamp"]
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_events_type_time", table_name="conversation_events")
    op.drop_index("ix_conversation_events_sender_id", table_name="conversation_events")
    op.drop_table("conversation_events")

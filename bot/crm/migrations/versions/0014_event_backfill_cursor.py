"""How far the event consumer's backfill has read Rasa's tracker store (bot.events.backfill).
Model: bot.events.models.EventBackfillCursor.

Revision ID: 0014_event_backfill_cursor
Revises: 0013_conversation_events
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = "0014_event_backfill_cursor"
down_revision = "0013_conversation_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_backfill_cursor",
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_event_backfill_cursor"),
    )


def downgrade() -> None:
    op.drop_table("event_backfill_cursor")

"""Guest media: photos and voice a guest sends (微信客服), stored as files under MEDIA_DIR and
linked to the complaint ticket they belong to. Model: bot.crm.models.GuestMedia; written by
bot.guest_media.

Revision ID: 0009_guest_media
Revises: 0008_guest_notices
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0009_guest_media"
down_revision = "0008_guest_notices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guest_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer()),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("wecom_media_id", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_guest_media"),
        sa.ForeignKeyConstraint(
            ["guest_id"], ["guests.id"], ondelete="CASCADE", name="fk_guest_media_guest_id_guests"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            ondelete="SET NULL",
            name="fk_guest_media_ticket_id_tickets",
        ),
    )
    op.create_index("ix_guest_media_guest_id", "guest_media", ["guest_id"])
    op.create_index("ix_guest_media_ticket_id", "guest_media", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_guest_media_ticket_id", table_name="guest_media")
    op.drop_index("ix_guest_media_guest_id", table_name="guest_media")
    op.drop_table("guest_media")

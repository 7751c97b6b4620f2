"""Guest notices: what a guest must be told once, unasked (a cancelled booking). Model:
bot.crm.models.GuestNotice; delivered by the worker (bot.bookings.notices).

Revision ID: 0008_guest_notices
Revises: 0007_marketing
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0008_guest_notices"
down_revision = "0007_marketing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guest_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),  # Fernet token (EncryptedText)
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_guest_notices"),
        sa.ForeignKeyConstraint(
            ["guest_id"], ["guests.id"], ondelete="CASCADE", name="fk_guest_notices_guest_id_guests"
        ),
        sa.UniqueConstraint("key", name="uq_guest_notices_key"),
    )
    op.create_index("ix_guest_notices_guest_id", "guest_notices", ["guest_id"])


def downgrade() -> None:
    op.drop_index("ix_guest_notices_guest_id", table_name="guest_notices")
    op.drop_table("guest_notices")

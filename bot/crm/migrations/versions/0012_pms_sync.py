"""PMS sync requests already taken (replay protection for the authenticated PMS push,
bot.bookings.sync). Model: bot.crm.models.PmsSyncRequest.

Revision ID: 0012_pms_sync
Revises: 0011_encrypt_copies
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0012_pms_sync"
down_revision = "0011_encrypt_copies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pms_sync_requests",
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signature", name="pk_pms_sync_requests"),
    )
    op.create_index("ix_pms_sync_requests_received_at", "pms_sync_requests", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_pms_sync_requests_received_at", table_name="pms_sync_requests")
    op.drop_table("pms_sync_requests")

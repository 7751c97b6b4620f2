"""Guest feedback that is not a complaint: praise said in chat (and later NPS answers).
Model: bot.crm.models.Feedback.

Revision ID: 0004_feedback
Revises: 0003_paging
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa

revision = "0004_feedback"
down_revision = "0003_paging"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guest_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer()),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer()),
        sa.Column("text", sa.Text()),  # Fernet token (EncryptedText)
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.ForeignKeyConstraint(
            ["guest_id"], ["guests.id"], ondelete="CASCADE", name="fk_feedback_guest_id_guests"
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            ondelete="SET NULL",
            name="fk_feedback_booking_id_bookings",
        ),
    )
    op.create_index("ix_feedback_guest_id", "feedback", ["guest_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_guest_id", table_name="feedback")
    op.drop_table("feedback")

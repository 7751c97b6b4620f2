"""WeCom channel tables: inbound inbox, 微信客服 sync cursor and send quota, outbound send log
(outbox / dead letters) and menu payloads. Models: bot/wecom/models.py.

Revision ID: 0002_wecom_channel
Revises: 0001_initial
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa

revision = "0002_wecom_channel"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "wecom_inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(160), nullable=False),
        sa.Column("surface", sa.String(8), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", UTC_TIMESTAMP, nullable=True),
        sa.Column("received_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("processed_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_wecom_inbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_wecom_inbox_dedupe_key"),
    )
    op.create_index("ix_wecom_inbox_status_sender", "wecom_inbox", ["status", "sender_id", "id"])

    op.create_table(
        "wecom_kf_cursor",
        sa.Column("open_kfid", sa.String(64), nullable=False),
        sa.Column("cursor", sa.String(128), nullable=True),
        sa.Column("callback_token", sa.String(256), nullable=True),
        sa.Column("token_received_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("open_kfid", name="pk_wecom_kf_cursor"),
    )

    op.create_table(
        "wecom_kf_quota",
        sa.Column("open_kfid", sa.String(64), nullable=False),
        sa.Column("external_userid", sa.String(64), nullable=False),
        sa.Column("last_guest_msg_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("sent_count", sa.Integer(), nullable=False),
        sa.Column("exhausted_at", UTC_TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("open_kfid", "external_userid", name="pk_wecom_kf_quota"),
    )

    op.create_table(
        "wecom_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(8), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("recipient", sa.String(128), nullable=True),
        sa.Column("dedupe_key", sa.String(160), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("errmsg", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wecom_outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_wecom_outbox_dedupe_key"),
    )
    op.create_index("ix_wecom_outbox_status_due", "wecom_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_wecom_outbox_recipient", "wecom_outbox", ["recipient"])

    op.create_table(
        "wecom_menu_payload",
        sa.Column("menu_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("menu_id", name="pk_wecom_menu_payload"),
    )


def downgrade() -> None:
    op.drop_table("wecom_menu_payload")
    op.drop_index("ix_wecom_outbox_recipient", table_name="wecom_outbox")
    op.drop_index("ix_wecom_outbox_status_due", table_name="wecom_outbox")
    op.drop_table("wecom_outbox")
    op.drop_table("wecom_kf_quota")
    op.drop_table("wecom_kf_cursor")
    op.drop_index("ix_wecom_inbox_status_sender", table_name="wecom_inbox")
    op.drop_table("wecom_inbox")

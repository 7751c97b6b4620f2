"""Encrypt the plain-text copies of guests' words (issue 12).

The words encrypted in `preference_tags.source_message` also sat in clear in the complaint's
`tickets.description`, the order's `orders.notes`, the SLA case's `sla_clocks.summary` /
`resolution` and `sla_notes.text`, the raw WeCom callback (`wecom_inbox.payload`) and what we sent
(`wecom_outbox.body`). Those columns become Fernet tokens (EncryptedText / EncryptedJSON, TEXT in
the database); existing values are encrypted here with the current CRM_ENCRYPTION_KEY.

Revision ID: 0011_encrypt_copies
Revises: 0010_legal_hold_audit
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0011_encrypt_copies"
down_revision = "0010_legal_hold_audit"
branch_labels = None
depends_on = None

TEXT_COLUMNS = (
    ("tickets", "description"),
    ("orders", "notes"),
    ("sla_clocks", "summary"),
    ("sla_clocks", "resolution"),
    ("sla_notes", "text"),
)
JSON_COLUMNS = (("wecom_inbox", "payload"), ("wecom_outbox", "body"))
TOKEN_PREFIX = "gAAAAA"  # every Fernet token starts so (version byte + timestamp)


def _encrypt_existing(table: str, column: str) -> None:
    from bot.crm.crypto import encrypt

    conn = op.get_bind()
    rows = conn.execute(
        sa.text(f'SELECT id, "{column}" FROM "{table}" ' f'WHERE "{column}" IS NOT NULL')
    ).all()
    updates = [
        {"id": row_id, "v": encrypt(value)}
        for row_id, value in rows
        if isinstance(value, str) and not value.startswith(TOKEN_PREFIX)
    ]
    if updates:
        conn.execute(sa.text(f'UPDATE "{table}" SET "{column}" = :v WHERE id = :id'), updates)


def _decrypt_existing(table: str, column: str) -> None:
    from bot.crm.crypto import decrypt

    conn = op.get_bind()
    rows = conn.execute(
        sa.text(f'SELECT id, "{column}" FROM "{table}" ' f'WHERE "{column}" IS NOT NULL')
    ).all()
    updates = [
        {"id": row_id, "v": decrypt(value)}
        for row_id, value in rows
        if isinstance(value, str) and value.startswith(TOKEN_PREFIX)
    ]
    if updates:
        conn.execute(sa.text(f'UPDATE "{table}" SET "{column}" = :v WHERE id = :id'), updates)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, column in JSON_COLUMNS:
        if postgres:
            op.execute(
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TEXT '
                f'USING "{column}"::text'
            )
        else:
            with op.batch_alter_table(table) as batch:
                batch.alter_column(column, type_=sa.Text(), existing_nullable=False)
    for table, column in (*TEXT_COLUMNS, *JSON_COLUMNS):
        _encrypt_existing(table, column)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, column in (*TEXT_COLUMNS, *JSON_COLUMNS):
        _decrypt_existing(table, column)
    for table, column in JSON_COLUMNS:
        if postgres:
            op.execute(
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE JSON '
                f'USING "{column}"::json'
            )
        else:
            with op.batch_alter_table(table) as batch:
                batch.alter_column(column, type_=sa.JSON(), existing_nullable=False)

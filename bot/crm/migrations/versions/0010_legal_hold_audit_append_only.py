"""Erasure support and an append-only audit log.

- `guests.legal_hold`: why a guest's data must be kept (a dispute, a court order); while set,
  neither `concierge guest erase` nor the worker's 24 h auto-erasure removes the guest.
- On PostgreSQL the audit log refuses UPDATE, DELETE and TRUNCATE (a trigger, so it binds the
  table's owner too, which REVOKE would not): an application role cannot rewrite history.

Revision ID: 0010_legal_hold_audit
Revises: 0009_guest_media
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0010_legal_hold_audit"
down_revision = "0009_guest_media"
branch_labels = None
depends_on = None

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""


def upgrade() -> None:
    with op.batch_alter_table("guests") as batch:
        batch.add_column(sa.Column("legal_hold", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    with op.batch_alter_table("guests") as batch:
        batch.drop_column("legal_hold")

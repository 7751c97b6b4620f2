"""On PostgreSQL the audit log cannot be rewritten by the application's role (migration 0009)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from bot.crm.db import upgrade
from bot.crm.store import CRMStore

pytestmark = pytest.mark.postgres


def test_update_delete_truncate_are_refused(pg_database_url):
    upgrade(pg_database_url)
    store = CRMStore(pg_database_url)
    store.record_audit("console:li", "profile.view", "guest", "kf:wm1")
    store.close()
    engine = create_engine(pg_database_url, future=True)
    try:
        for statement in (
            "UPDATE audit_log SET actor = 'someone-else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                with engine.begin() as conn:
                    conn.execute(text(statement))
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_log (actor, action, created_at) "
                    "VALUES ('cli:x', 'test', now())"
                )
            )
            rows = conn.execute(text("SELECT actor FROM audit_log ORDER BY id")).scalars().all()
        assert rows == ["console:li", "cli:x"]
    finally:
        engine.dispose()

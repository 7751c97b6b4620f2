"""The Alembic history runs on both backends and matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.crm import models
from bot.crm.db import current_revision, downgrade, head_revision, make_engine, upgrade

CRM_TABLES = {
    "guests",
    "bookings",
    "preference_tags",
    "orders",
    "tickets",
    "handoffs",
    "pages",
    "consents",
    "audit_log",
    "guest_identities",
    "identity_link_attempts",
    "guest_facts",
    "guest_notices",
    "pms_sync_requests",
}


def _crm_only(obj, name, type_, reflected, compare_to):
    """Compare only the CRM's own tables: other packages add theirs in later revisions."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or table.name in CRM_TABLES


def test_upgrade_creates_every_crm_table(db_url):
    assert current_revision(db_url) is None
    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    try:
        assert CRM_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_initial_revision_is_named_for_later_revisions_to_build_on(db_url):
    assert upgrade(db_url, "0001_initial") == "0001_initial"


def test_models_and_migrations_agree(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": _crm_only}
            )
            assert compare_metadata(context, models.Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(db_url):
    upgrade(db_url)
    assert downgrade(db_url, "base") is None
    engine = make_engine(db_url)
    try:
        assert not CRM_TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert upgrade(db_url) == head_revision()


def test_upgrade_is_idempotent(db_url):
    first = upgrade(db_url)
    assert upgrade(db_url) == first

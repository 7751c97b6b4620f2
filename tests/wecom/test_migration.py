"""The WeCom tables come from the 0002 migration and match bot/wecom/models.py on both backends."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from bot.crm import models as crm_models
from bot.crm.db import downgrade, make_engine, upgrade
from bot.wecom.models import WECOM_TABLES
from tests.conftest import PG_URL, require_service

NAMES = {t.name for t in WECOM_TABLES}


def _wecom_only(obj, name, type_, reflected, compare_to):
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or table.name in NAMES


def _check(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        assert NAMES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": _wecom_only}
            )
            assert compare_metadata(ctx, crm_models.Base.metadata) == []
        downgrade(url, "0001_initial")
        assert not NAMES & set(inspect(engine).get_table_names())
        upgrade(url)
    finally:
        engine.dispose()


def test_sqlite(tmp_path):
    _check(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres():
    require_service("PostgreSQL", "127.0.0.1", 5432)
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", future=True)
    name = f"wecom_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        _check(PG_URL.rsplit("/", 1)[0] + f"/{name}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

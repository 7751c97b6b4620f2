"""Migrations of the project's database (engines and sessions: bot.core.db, re-exported here).

upgrade(url)                              # run the Alembic migrations to head
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

# Engines and sessions live in bot.core.db; re-exported for the many CRM-side imports.
from bot.core.db import (  # noqa: F401
    PG_CONNECT_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_S,
    EngineOrUrl,
    as_engine,
    make_engine,
    make_session_factory,
    session_scope,
)
from bot.crm.errors import guarded

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


# ---- migrations -------------------------------------------------------------------------------


def alembic_config(engine: Engine | None = None):
    """An Alembic Config built in code (no alembic.ini): script location is bot/crm/migrations.

    When `engine` is given, env.py uses a connection from it instead of building its own.
    """
    from alembic.config import Config  # imported here: only migrations need Alembic

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


@guarded
def upgrade(engine_or_url: EngineOrUrl = None, revision: str = "head") -> str | None:
    """Migrate the database to `revision` (default: the newest) and return the revision reached."""
    from alembic import command

    engine = as_engine(engine_or_url)
    try:
        command.upgrade(alembic_config(engine), revision)
        return current_revision(engine)
    finally:
        if not isinstance(engine_or_url, Engine):
            engine.dispose()


@guarded
def downgrade(engine_or_url: EngineOrUrl, revision: str) -> str | None:
    """Migrate down to `revision` ("base" removes every CRM table)."""
    from alembic import command

    engine = as_engine(engine_or_url)
    try:
        command.downgrade(alembic_config(engine), revision)
        return current_revision(engine)
    finally:
        if not isinstance(engine_or_url, Engine):
            engine.dispose()


@guarded
def current_revision(engine_or_url: EngineOrUrl = None) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    engine = as_engine(engine_or_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if not isinstance(engine_or_url, Engine):
            engine.dispose()


def head_revision() -> str | None:
    """The newest revision in bot/crm/migrations/versions."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()

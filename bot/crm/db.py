"""Engines, sessions and migrations for the CRM database.

One URL decides the backend: a SQLite file by default (`bot.settings`), PostgreSQL in production.
Everything here is a function called on demand: importing this module connects to nothing.

    engine = make_engine(url)                 # SQLite pragmas / PostgreSQL pre-ping set up
    factory = make_session_factory(engine)
    with session_scope(factory) as session:   # commit on success, rollback on error
        ...
    upgrade(url)                              # run the Alembic migrations to head
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Union

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from bot.crm.errors import guarded
from bot.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# How long a SQLite writer waits for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30
# How long a PostgreSQL connection attempt may take before we call the store unavailable.
PG_CONNECT_TIMEOUT_S = 5

EngineOrUrl = Union[Engine, str, None]


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """A 2.0-style engine for `url` (default: settings' DATABASE_URL).

    SQLite gets foreign keys on (off by default there, and our cascades rely on them), WAL (readers
    don't block the writer: Rasa, the action server and the worker share the file) with
    synchronous=NORMAL (safe with WAL against a process crash; only a power cut may lose the last
    commits), a busy timeout, and a connection pool: SQLAlchemy 1.4 opens a new SQLite connection
    (and re-runs the pragmas) on every checkout otherwise, a third of a write's cost
    (docs/PERFORMANCE.md). PostgreSQL gets pool_pre_ping so a restarted server costs one retry, not an error,
    and a connect timeout so an unreachable server fails fast.
    """
    url = url or get_settings().database_url
    parsed = make_url(url)
    options: dict = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            options.update(poolclass=QueuePool, pool_size=5, max_overflow=10)
    elif parsed.get_backend_name() == "postgresql":
        options["pool_pre_ping"] = True
        if parsed.get_driver_name() in ("psycopg2", "") and "connect_timeout" not in parsed.query:
            options["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    options.update(kwargs)
    engine = create_engine(parsed, **options)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode=WAL")  # a no-op answer for :memory: databases
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def as_engine(engine_or_url: EngineOrUrl) -> Engine:
    """Accept what callers have at hand: an Engine, a URL, or None for the configured URL."""
    if isinstance(engine_or_url, Engine):
        return engine_or_url
    return make_engine(engine_or_url)


def make_session_factory(engine: Engine) -> sessionmaker:
    """Sessions that keep loaded attributes after commit (we copy them into DTOs afterwards)."""
    return sessionmaker(bind=engine, future=True, expire_on_commit=False)


@contextlib.contextmanager
def session_scope(factory: sessionmaker) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back if it raises, always close."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


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

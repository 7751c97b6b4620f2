"""The database base and sessions: the declarative Base every table derives from, engines with
the SQLite / PostgreSQL set-up, and one unit-of-work helper.

One URL decides the backend: a SQLite file by default (bot.core.settings), PostgreSQL in
production. Everything here is a function called on demand: importing this module connects to
nothing. Migrations stay with the CRM (bot/crm/db.py, bot/crm/migrations).

    engine = make_engine(url)                 # SQLite pragmas / PostgreSQL pre-ping set up
    factory = make_session_factory(engine)
    with session_scope(factory) as session:   # commit on success, rollback on error
        ...
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Union

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, declarative_base, sessionmaker
from sqlalchemy.pool import QueuePool

from bot.core.settings import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Every table of the project (CRM, WeCom, paging, marketing, ...) shares this metadata, so one
# Alembic history migrates them all.
Base: Any = declarative_base(metadata=MetaData(naming_convention=NAMING_CONVENTION))

# How long a SQLite writer waits for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30
# How long a PostgreSQL connection attempt may take before we call the store unavailable.
PG_CONNECT_TIMEOUT_S = 5

EngineOrUrl = Union[Engine, str, None]


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
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
    options: dict[str, Any] = {"future": True}
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


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
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

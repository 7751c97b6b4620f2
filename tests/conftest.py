"""Shared fixtures. Services on this machine (PostgreSQL, Redis) are used for real: a test that
needs one skips with a reason when it is absent, and fails instead when `CI` is set."""

from __future__ import annotations

import os
import shutil
import socket
import uuid

import pytest

from bot.settings import get_settings

IN_CI = bool(os.environ.get("CI"))
# The processes the tests start (Rasa, the action server, the sandbox) run their preflight: under
# `test` the embedded defaults are tolerated (unset would count as production and refuse them).
os.environ.setdefault("CONCIERGE_ENV", "test")
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (in CI) when a real service this test needs is not listening."""
    if _port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}, and CI is set: the service must be running")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch, tmp_path):
    """Each test reads settings from its own environment, never from a developer's var/ files."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'concierge.db'}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("WEATHER_PROVIDER", "demo")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def pg_database_url():
    """A fresh, empty PostgreSQL database for one test: created before it, dropped after it
    (WITH FORCE, so connections a test forgot to close do not block the drop). Skips without a
    server locally, fails without one in CI."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(PG_URL)
    require_service("PostgreSQL", server.host or "127.0.0.1", server.port or 5432)
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", future=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """A SQLite CRM migrated once per session; `db_url` gives each test its own copy (running
    every migration per test is slow)."""
    from bot.crm.db import upgrade

    path = tmp_path_factory.mktemp("migrated_template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def db_url(monkeypatch, tmp_path, migrated_template):
    """This test's own migrated SQLite CRM, also set as DATABASE_URL. (tests/crm and
    tests/paging define their own, run on SQLite and PostgreSQL.)"""
    target = tmp_path / "crm.db"
    shutil.copyfile(migrated_template, target)
    url = f"sqlite:///{target}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    return url

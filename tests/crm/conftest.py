"""CRM test fixtures: every store test runs once on SQLite and once on PostgreSQL, each on its
own empty database (a tmp_path file / a database created for the test)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from bot.crm import crypto
from bot.crm.db import upgrade
from bot.crm.store import CRMStore
from bot.settings import get_settings

TEST_KEY = Fernet.generate_key().decode()

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(autouse=True)
def crm_key(monkeypatch):
    """A real key for every CRM test (the key tests override it), and no production mode."""
    monkeypatch.setenv("CRM_ENCRYPTION_KEY", TEST_KEY)
    monkeypatch.delenv("CONCIERGE_ENV", raising=False)
    get_settings.cache_clear()
    crypto.reset_for_tests()
    yield TEST_KEY
    crypto.reset_for_tests()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """An empty database URL for the backend this run is parametrised with."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def store(db_url):
    """A CRMStore on a freshly migrated database."""
    upgrade(db_url)
    crm = CRMStore(db_url)
    yield crm
    crm.close()

"""Fixtures for the guest flows: a migrated CRM of this test's own, the demo guests, and the real
service container (what the actions use) with the spool in the test's tmp dir.

The demo data is loaded as if five days ago, so demo-lin (check-in "in 6 days" in the demo file)
arrives *tomorrow*: the done-when scenario orders an airport pickup for tomorrow 8 am, which is
only valid on the arrival day.
"""

from __future__ import annotations

import datetime as dt

import pytest

from bot.crm.db import upgrade
from bot.crm.demo import load_demo
from bot.crm.store import CRMStore, china_today
from bot.flows import SPOOL_FILE_ENV
from bot.services import get_services
from bot.settings import get_settings

DEMO_SHIFT = dt.timedelta(days=5)


@pytest.fixture
def crm_url():
    url = get_settings().database_url
    upgrade(url)
    load_demo(url, today=china_today() - DEMO_SHIFT)
    return url


@pytest.fixture
def spool_file(tmp_path, monkeypatch):
    path = tmp_path / "spool" / "crm-writes.jsonl"
    monkeypatch.setenv(SPOOL_FILE_ENV, str(path))
    get_settings.cache_clear()
    return path


@pytest.fixture
def services(crm_url, spool_file):
    """The process-wide container the actions use, fresh for this test."""
    get_services.cache_clear()
    yield get_services()
    get_services().store.close()
    get_services.cache_clear()


@pytest.fixture
def restart(services):
    """Simulate an action-server restart: a new container, new engine, same database/spool."""

    def _restart():
        get_services().store.close()
        get_services.cache_clear()
        return get_services()

    return _restart


@pytest.fixture
def fresh_store(crm_url):
    """An independent store on the same database: what another process would read."""
    store = CRMStore(crm_url)
    yield store
    store.close()


@pytest.fixture
def shanghai_guest(services):
    """A guest staying at the city hotel (no spa, no diving) from tomorrow for three nights."""
    store = services.store
    store.get_or_create_guest("test-sh")
    today = china_today()
    store.add_booking(
        "test-sh",
        property_id="shanghai-bund-hotel",
        city="上海",
        check_in=today + dt.timedelta(days=1),
        check_out=today + dt.timedelta(days=4),
    )
    return "test-sh"

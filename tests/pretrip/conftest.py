from __future__ import annotations

import datetime as dt

import pytest

from bot.crm.db import upgrade
from bot.crm.demo import load_demo
from bot.crm.store import CRMStore
from bot.knowledge.kb import KnowledgeBase
from bot.knowledge.weather import DemoWeatherProvider
from bot.pretrip import PreTripService
from bot.services import get_services
from bot.settings import PROJECT_ROOT, get_settings

TODAY = dt.date(2026, 7, 1)  # a fixed day: typhoon season in 三亚, rain in 上海


@pytest.fixture
def demo_url():
    """A migrated SQLite database (this test's own) with the demo guests, dated from TODAY."""
    url = get_settings().database_url
    upgrade(url)
    load_demo(url, today=TODAY)
    return url


@pytest.fixture
def kb():
    return KnowledgeBase.load(PROJECT_ROOT / "data" / "knowledge")


@pytest.fixture
def store(demo_url):
    store = CRMStore(demo_url)
    yield store
    store.close()


@pytest.fixture
def service(store, kb):
    return PreTripService(
        store=store,
        kb=kb,
        weather=DemoWeatherProvider(kb, today=lambda: TODAY),
        today=lambda: TODAY,
    )


@pytest.fixture
def live_services():
    """The real process-wide container (what actions use), on a demo DB dated from today."""
    url = get_settings().database_url
    upgrade(url)
    load_demo(url)
    get_services.cache_clear()
    yield get_services()
    get_services().store.close()
    get_services.cache_clear()

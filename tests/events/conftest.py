from __future__ import annotations

import pytest

from tests.conftest import require_service
from tests.events.helpers import RABBIT, delete_queue, new_queue_name


@pytest.fixture
def queue(monkeypatch):
    """This test's own events queue (and its .dead queue) and exchange (Rasa's default one is
    shared by everything on this machine), as EVENT_BROKER_QUEUE/EXCHANGE."""
    require_service("RabbitMQ", *RABBIT)
    name = new_queue_name()
    for key, value in (
        ("EVENT_BROKER_HOST", RABBIT[0]),
        ("EVENT_BROKER_PORT", str(RABBIT[1])),
        ("EVENT_BROKER_USERNAME", "guest"),
        ("EVENT_BROKER_PASSWORD", "guest"),
        ("EVENT_BROKER_QUEUE", name),
        ("EVENT_BROKER_EXCHANGE", name),
    ):
        monkeypatch.setenv(key, value)
    yield name
    delete_queue(name)


@pytest.fixture
def pg_crm(pg_database_url, monkeypatch):
    """A migrated PostgreSQL CRM of this test's own, as DATABASE_URL."""
    from bot.crm.db import make_engine, upgrade
    from bot.settings import get_settings

    upgrade(pg_database_url)
    monkeypatch.setenv("DATABASE_URL", pg_database_url)
    get_settings.cache_clear()
    engine = make_engine(pg_database_url)
    yield engine
    engine.dispose()

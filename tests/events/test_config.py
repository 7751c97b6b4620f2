"""The production files name the event stream: Rasa reads its broker from the environment, and
the process set runs the consumer."""

from __future__ import annotations

from bot.events.consumer import BrokerSettings
from bot.settings import PROJECT_ROOT


def test_endpoints_production_names_the_pika_broker_from_the_environment(monkeypatch):
    from rasa.core.utils import read_endpoints_from_path

    env = {
        "ACTION_ENDPOINT_URL": "http://127.0.0.1:5055/webhook",
        "TRACKER_DATABASE_URL": "postgresql://u@127.0.0.1/rasa",
        "LOCK_REDIS_HOST": "h",
        "LOCK_REDIS_PORT": "6379",
        "LOCK_REDIS_DB": "1",
        "EVENT_BROKER_HOST": "mq.internal",
        "EVENT_BROKER_PORT": "5671",
        "EVENT_BROKER_USERNAME": "concierge",
        "EVENT_BROKER_PASSWORD": "s3cret",
        "EVENT_BROKER_QUEUE": "events_q",
        "EVENT_BROKER_EXCHANGE": "events_x",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    broker = read_endpoints_from_path(PROJECT_ROOT / "endpoints.production.yml").event_broker
    assert broker.type == "pika" and broker.url == "mq.internal"
    assert broker.kwargs == {
        "port": "5671",
        "username": "concierge",
        "password": "s3cret",
        "queues": ["events_q"],
        "exchange_name": "events_x",
    }
    # the consumer reads the same names
    assert BrokerSettings.from_env() == BrokerSettings(
        "mq.internal", 5671, "concierge", "s3cret", "events_q", "events_x"
    )


def test_the_production_process_set_runs_the_consumer():
    lines = dict(
        line.split(":", 1)
        for line in (PROJECT_ROOT / "Procfile.production").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert lines["events"].strip() == ".venv/bin/concierge events consume"


def test_rasa_refuses_to_start_naming_the_event_broker_variables_it_lacks(monkeypatch):
    from bot.preflight import rasa_server_checks
    from bot.settings import get_settings

    for key in ("EVENT_BROKER_HOST", "EVENT_BROKER_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    for key in (
        "ACTION_ENDPOINT_URL",
        "TRACKER_DATABASE_URL",
        "LOCK_REDIS_HOST",
        "LOCK_REDIS_PORT",
        "LOCK_REDIS_DB",
        "EVENT_BROKER_PORT",
        "EVENT_BROKER_USERNAME",
        "EVENT_BROKER_QUEUE",
        "EVENT_BROKER_EXCHANGE",
    ):
        monkeypatch.setenv(key, "x")
    check = rasa_server_checks(
        [
            "-i",
            "127.0.0.1",
            "--endpoints",
            str(PROJECT_ROOT / "endpoints.production.yml"),
            "--credentials",
            str(PROJECT_ROOT / "credentials.production.yml"),
        ]
    )
    assert {p.name for p in check(get_settings())} == {"EVENT_BROKER_HOST", "EVENT_BROKER_PASSWORD"}
    monkeypatch.setenv("EVENT_BROKER_HOST", "mq")
    monkeypatch.setenv("EVENT_BROKER_PASSWORD", "pw")
    assert check(get_settings()) == []

"""Rasa's pika event broker with bot.events.rasa_broker: events it could not publish during a
broker outage are sent once publishing works again (a later publish, or the 5 s timer), not left
in memory until a reconnect callback that may never come."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.events import rasa_broker


class FlakyExchange:
    """Refuses the first `fail` publishes (RabbitMQ restarting), then takes them."""

    def __init__(self, fail: int):
        self.fail, self.bodies = fail, []

    async def publish(self, message, routing_key):
        await asyncio.sleep(0)
        if self.fail:
            self.fail -= 1
            raise ConnectionError("channel closed")
        self.bodies.append(json.loads(message.body))


class OpenConnection:
    is_closed = False


@pytest.fixture
def broker(monkeypatch):
    import rasa.shared.core.events  # noqa: F401  (Rasa's pika module uses it unimported)
    from rasa.core.brokers.pika import PikaEventBroker

    monkeypatch.setattr(PikaEventBroker, "_publish", PikaEventBroker._publish)
    monkeypatch.setattr(PikaEventBroker, "connect", PikaEventBroker.connect)
    rasa_broker.deliver_kept_events()
    rasa_broker.deliver_kept_events()  # idempotent

    def make(fail: int):
        b = PikaEventBroker(
            "127.0.0.1", "guest", "guest", queues=["q"], event_loop=asyncio.get_running_loop()
        )
        b._exchange, b._connection = FlakyExchange(fail), OpenConnection()
        return b

    return make


async def settle(b) -> None:
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not b._background_tasks:
            return


def event(i: int) -> dict:
    return {"sender_id": "kf:a", "event": "user", "timestamp": 1_764_500_000.0 + i}


async def test_kept_events_go_out_with_the_first_publish_that_works(broker):
    b = broker(fail=3)
    for i in range(5):
        b.publish(event(i))
        await settle(b)
    assert sorted(e["timestamp"] for e in b._exchange.bodies) == [
        event(i)["timestamp"] for i in range(5)
    ]
    assert len(b._exchange.bodies) == 5 and not b._unpublished_events  # each once


async def test_kept_events_go_out_on_the_timer_when_nothing_else_is_published(broker, monkeypatch):
    monkeypatch.setattr(rasa_broker, "RETRY_EVERY_S", 0.05)
    b = broker(fail=2)
    b.publish(event(0))
    b.publish(event(1))
    await settle(b)
    assert len(b._unpublished_events) == 2 and b._exchange.bodies == []
    timer = asyncio.create_task(rasa_broker._retry(b))
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(b._exchange.bodies) == 2:
                break
    finally:
        timer.cancel()
    assert [e["timestamp"] for e in b._exchange.bodies] == [
        event(0)["timestamp"],
        event(1)["timestamp"],
    ]
    assert not b._unpublished_events


async def test_while_the_broker_stays_away_nothing_is_dropped(broker, monkeypatch):
    b = broker(fail=1000)
    for i in range(3):
        b.publish(event(i))
    await settle(b)
    rasa_broker._flush(b)  # a retry during the outage
    await settle(b)
    assert len(b._unpublished_events) == 3 and b._exchange.bodies == []

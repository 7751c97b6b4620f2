"""The event-stream consumer on the machine's RabbitMQ and PostgreSQL: idempotent (a duplicate
delivery, a consumer killed between its commit and its ack), keeps going past malformed
deliveries (dead-lettered, listed, requeued), waits out a database outage, and stores what Rasa's
own pika event broker publishes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.events.consumer import BrokerSettings, EventConsumer
from bot.events.models import ConversationEvent
from bot.events.store import EventStore
from bot.settings import PROJECT_ROOT
from tests.events.helpers import depth, publish

T = ConversationEvent.__table__


def user(sender: str, text: str, at: float, intent: str = "greet") -> dict:
    return {
        "sender_id": sender,
        "event": "user",
        "timestamp": at,
        "text": text,
        "parse_data": {"text": text, "intent": {"name": intent, "confidence": 0.93}},
    }


def consume(store, idle_s: float = 1.5) -> int:
    """An in-process consumer until the queue has been quiet for idle_s; deliveries handled."""
    consumer = EventConsumer(store, BrokerSettings.from_env())
    return asyncio.run(consumer.run(idle_exit_s=idle_s))


def rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(T.c.sender_id, T.c.type_name, T.c.intent_name, T.c.data).order_by(T.c.id)
            )
        ]


def outcome(name: str) -> float:
    return REGISTRY.get_sample_value("concierge_events_consumed_total", {"outcome": name}) or 0.0


def wait_for_depth(queue: str, n: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while (found := depth(queue)) != n and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_a_duplicate_delivery_is_stored_once(queue, pg_crm):
    first, second = user("kf:a", "你好", 1_764_500_000.0), user("kf:a", "早餐几点", 1_764_500_005.0)
    duplicates = outcome("duplicate")
    publish(queue, first, first, second, first)
    assert consume(EventStore(pg_crm)) == 4
    assert [(s, t, json.loads(d)["text"]) for s, t, _, d in rows(pg_crm)] == [
        ("kf:a", "user", "你好"),
        ("kf:a", "user", "早餐几点"),
    ]
    assert outcome("duplicate") - duplicates == 2
    assert depth(queue) == 0


def test_a_consumer_killed_before_its_ack_gets_the_event_again_and_stores_it_once(queue, pg_crm):
    publish(
        queue, user("kf:b", "有停车场吗", 1_764_500_000.0), user("kf:b", "收费吗", 1_764_500_003.0)
    )
    crash = subprocess.run(
        [sys.executable, "-m", "tests.events.crash_consumer"],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crash.returncode == -9, crash.stderr[-2000:]
    assert len(rows(pg_crm)) == 1  # committed, never acknowledged
    assert wait_for_depth(queue, 2) == 2  # RabbitMQ put it back
    duplicates = outcome("duplicate")
    assert consume(EventStore(pg_crm)) == 2
    assert [json.loads(d)["text"] for *_, d in rows(pg_crm)] == ["有停车场吗", "收费吗"]
    assert outcome("duplicate") - duplicates == 1
    assert depth(queue) == 0


def test_malformed_deliveries_are_dead_lettered_listed_and_requeued_and_the_rest_stored(
    queue, pg_crm, capsys
):
    from bot.cli import main

    dead = outcome("dead")
    publish(
        queue,
        user("kf:c", "一", 1_764_500_000.0),
        b"{not json",
        {"event": "user", "timestamp": 1.0},
        [1, 2],
        user("kf:c", "二", 1_764_500_001.0),
    )
    assert consume(EventStore(pg_crm)) == 5
    assert [json.loads(d)["text"] for *_, d in rows(pg_crm)] == ["一", "二"]
    assert outcome("dead") - dead == 3
    assert depth(f"{queue}.dead") == 3 and depth(queue) == 0

    assert main(["events", "dead", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["reason"].split(":")[0] for r in listed] == [
        "not JSON",
        "no sender_id or event type",
        "not a JSON object",
    ]
    assert depth(f"{queue}.dead") == 3  # listing leaves them where they are

    assert main(["events", "requeue"]) == 0
    assert "requeued 3" in capsys.readouterr().out
    assert depth(f"{queue}.dead") == 0 and wait_for_depth(queue, 3) == 3


class FlakyStore(EventStore):
    """The database refuses the first `failures` inserts (a restart, a failover)."""

    def __init__(self, engine, failures: int):
        super().__init__(engine)
        self.failures = failures

    def record(self, raw) -> bool:
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))
        return super().record(raw)


def test_a_database_outage_is_waited_out_in_order_without_losing_an_event(queue, pg_crm):
    publish(queue, *(user("kf:d", f"第{i}句", 1_764_500_000.0 + i) for i in range(3)))
    store = FlakyStore(pg_crm, failures=2)
    assert consume(store) == 3
    assert store.failures == 0
    assert [json.loads(d)["text"] for *_, d in rows(pg_crm)] == ["第0句", "第1句", "第2句"]


@pytest.fixture
def rasa_broker_as_served(monkeypatch):
    """Rasa's PikaEventBroker with bot.events.rasa_broker applied, as bot.rasa_main runs it."""
    import rasa.shared.core.events  # noqa: F401  (Rasa's pika module uses it unimported)
    from rasa.core.brokers.pika import PikaEventBroker

    from bot.events import rasa_broker

    for name in ("_set_up_exchange", "_publish", "connect"):
        monkeypatch.setattr(PikaEventBroker, name, getattr(PikaEventBroker, name))
    rasa_broker.apply()
    return PikaEventBroker


def test_the_exchange_is_durable_so_its_binding_survives_a_broker_restart(
    queue, rasa_broker_as_served
):
    import aio_pika
    from aiormq.exceptions import ChannelPreconditionFailed

    async def go():
        broker = rasa_broker_as_served(
            "127.0.0.1", "guest", "guest", port=5672, queues=[queue], exchange_name=queue
        )
        await broker.connect()
        connection = await aio_pika.connect(host="127.0.0.1", login="guest", password="guest")
        try:
            channel = await connection.channel()
            # RabbitMQ refuses a redeclaration with another durability: it is durable
            with pytest.raises(ChannelPreconditionFailed):
                await channel.declare_exchange(queue, aio_pika.ExchangeType.FANOUT, durable=False)
        finally:
            await connection.close()
            await broker.close()

    asyncio.run(go())


def test_what_rasas_pika_event_broker_publishes_is_stored(
    queue, pg_crm, tmp_path, rasa_broker_as_served
):
    PikaEventBroker = rasa_broker_as_served
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    async def converse():
        broker = PikaEventBroker(
            "127.0.0.1", "guest", "guest", port=5672, queues=[queue], exchange_name=queue
        )
        await broker.connect()
        store = SQLTrackerStore(
            Domain.empty(), dialect="sqlite", db=str(tmp_path / "tracker.db"), event_broker=broker
        )
        tracker = DialogueStateTracker("kf:e", [])
        for event in (
            UserUttered(
                "我要找人工",
                {"name": "request_human", "confidence": 0.97},
                parse_data={"intent": {"name": "request_human", "confidence": 0.97}},
                timestamp=1_764_500_000.0,
            ),
            ActionExecuted("action_request_human", timestamp=1_764_500_000.5),
            SlotSet("fallback_route", "handed_off", timestamp=1_764_500_000.6),
            BotUttered("好的，马上为您转接", timestamp=1_764_500_001.0),
        ):
            tracker.update(event)
        await store.save(tracker)
        await store.save(tracker)  # nothing new: nothing published
        while broker._background_tasks:
            await asyncio.sleep(0.05)
        await broker.close()

    asyncio.run(converse())
    assert consume(EventStore(pg_crm)) == 4
    assert [r[:3] for r in rows(pg_crm)] == [
        ("kf:e", "user", "request_human"),
        ("kf:e", "action", None),
        ("kf:e", "slot", None),
        ("kf:e", "bot", None),
    ]
    since = dt.datetime.fromtimestamp(1_764_499_000.0, dt.timezone.utc)
    usage = EventStore(pg_crm).usage_since(since)
    assert usage == {
        "intents": {"request_human": 1},
        "senders": ["kf:e"],
        "handed_off": ["kf:e"],
        "fallbacks": 0,
    }


def test_a_quiet_queue_does_not_stop_the_consumer(queue, pg_crm):
    """The consumer waits through idle spells (longer than its 1 s poll) and still takes what
    comes after them."""
    store = EventStore(pg_crm)
    consumer = EventConsumer(store, BrokerSettings.from_env())

    async def go():
        task = asyncio.create_task(consumer.run(max_events=2))
        await asyncio.sleep(2.5)  # two idle polls
        await asyncio.to_thread(publish, queue, user("kf:f", "一", 1_764_500_000.0))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(publish, queue, user("kf:f", "二", 1_764_500_001.0))
        return await asyncio.wait_for(task, timeout=30)

    assert asyncio.run(go()) == 2
    assert [json.loads(d)["text"] for *_, d in rows(pg_crm)] == ["一", "二"]


def _close_connection_named(name: str) -> bool:
    """Close (server side, as a broker restart does) the connection that called itself `name`."""
    out = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_connections",
            "--no-table-headers",
            "name",
            "client_properties",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    for line in out.splitlines():
        conn, _, properties = line.partition("\t")
        if f'"{name}"' in properties or f'<<"{name}">>' in properties:
            subprocess.run(
                ["rabbitmqctl", "close_connection", conn.strip(), "test restart"],
                capture_output=True,
                timeout=30,
            )
            return True
    return False


def test_the_consumer_reconnects_after_the_broker_drops_it_and_stores_each_event_once(
    queue, pg_crm
):
    import shutil

    if not shutil.which("rabbitmqctl"):
        pytest.skip("rabbitmqctl is not installed: cannot drop the consumer's connection")
    store = EventStore(pg_crm)
    consumer = EventConsumer(store, BrokerSettings.from_env())

    async def go():
        task = asyncio.create_task(consumer.run(max_events=6))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(
            publish, queue, *(user("kf:g", f"前{i}", 1_764_500_000.0 + i) for i in range(3))
        )
        await asyncio.sleep(1.0)
        assert await asyncio.to_thread(_close_connection_named, f"concierge-events:{queue}")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(
            publish, queue, *(user("kf:g", f"后{i}", 1_764_500_010.0 + i) for i in range(3))
        )
        return await asyncio.wait_for(task, timeout=40)

    assert asyncio.run(go()) >= 6
    texts = [json.loads(d)["text"] for *_, d in rows(pg_crm)]
    assert texts == ["前0", "前1", "前2", "后0", "后1", "后2"]


class _RecordingConsumer(EventConsumer):
    """The real consumer, remembering each queue its connect() declared (to close its channel
    the way RabbitMQ does on `stop_app`: the channel goes, the connection object stays open)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.queues: list = []

    async def connect(self):
        declared = await super().connect()
        self.queues.append(declared)
        return declared


def test_the_consumer_reconnects_when_only_its_channel_is_closed(queue, pg_crm):
    store = EventStore(pg_crm)
    consumer = _RecordingConsumer(store, BrokerSettings.from_env())

    async def go():
        task = asyncio.create_task(consumer.run(max_events=4))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(publish, queue, user("kf:c", "前", 1_764_600_000.0))
        await asyncio.sleep(1.0)
        await consumer.queues[0].channel.close()  # the broker's side of a restart, channel only
        await asyncio.sleep(0.5)
        await asyncio.to_thread(
            publish, queue, *(user("kf:c", f"后{i}", 1_764_600_010.0 + i) for i in range(3))
        )
        return await asyncio.wait_for(task, timeout=30)

    assert asyncio.run(go()) == 4
    assert len(consumer.queues) == 2  # it connected again by itself
    texts = [json.loads(d)["text"] for *_, d in rows(pg_crm)]
    assert texts == ["前", "后0", "后1", "后2"]
    assert depth(queue) == 0

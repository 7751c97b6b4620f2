"""Events a Rasa server committed but never published (killed in between) reach
`conversation_events` from the tracker store: exactly the missing ones, under the key the broker's
delivery has (a late delivery stores nothing), only once they are past the grace period, and a
failed pass moves nothing. CRM on the machine's PostgreSQL; Rasa's own SQL tracker store (with
our publish-after-commit save) on a SQLite file."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from sqlalchemy import func, select

from bot.events.backfill import EventBackfill, follow
from bot.events.models import ConversationEvent, EventBackfillCursor
from bot.events.store import EventStore
from bot.settings import get_settings
from bot.tracker_events import TrackerEvents

NOW = time.time()


class DyingBroker:
    """Rasa's event broker as the consumer sees it (Rasa's pika broker sends json.dumps(event)),
    that stops delivering after `deliver` events: the server was killed after its commit."""

    def __init__(self, deliver: int):
        self.deliver = deliver
        self.delivered: list[bytes] = []
        self.lost: list[bytes] = []

    def publish(self, event, headers=None) -> None:
        raw = json.dumps(event).encode("utf-8")
        (self.delivered if len(self.delivered) < self.deliver else self.lost).append(raw)

    def is_ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None


@pytest.fixture
def tracker_store(monkeypatch, tmp_path):
    """A factory of Rasa SQL tracker stores on one SQLite file, saving as bot.rasa_main makes
    them (bot.rasa_speedups.publish_stored_events), restored after the test."""
    import rasa.core.tracker_store as rasa_stores
    from rasa.shared.core.domain import Domain

    from bot.rasa_speedups import publish_stored_events

    for name in ("save", "_retrieve"):
        monkeypatch.setattr(
            rasa_stores.SQLTrackerStore, name, getattr(rasa_stores.SQLTrackerStore, name)
        )
    publish_stored_events()
    path = tmp_path / "tracker.db"

    def make(broker):
        return rasa_stores.SQLTrackerStore(
            Domain.empty(), dialect="sqlite", db=str(path), event_broker=broker
        )

    make.url = f"sqlite:///{path}"
    return make


async def _turns(store, sender: str, turns, start: float) -> None:
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    tracker = DialogueStateTracker(sender, [])
    for i, (said, answer) in enumerate(turns):
        t = start + i
        tracker.update(
            UserUttered(
                said,
                intent={"name": "ask_breakfast", "confidence": 0.91},
                parse_data={"intent": {"name": "ask_breakfast", "confidence": 0.91}},
                message_id=f"{sender}-m{i}",
                timestamp=t,
            )
        )
        tracker.update(SlotSet("pending_topic", "早餐", timestamp=t + 0.1))
        tracker.update(BotUttered(answer, timestamp=t + 0.2))
        tracker.update(ActionExecuted("action_listen", timestamp=t + 0.3))
        await store.save(tracker)


def _stream(crm) -> int:
    with crm.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ConversationEvent)).scalar_one())


def _backfill(crm, tracker_store, **kwargs) -> EventBackfill:
    kwargs.setdefault("clock", lambda: NOW + 3600)  # every row long past the grace
    return EventBackfill(crm, TrackerEvents(tracker_store.url), grace_s=60, **kwargs)


def test_events_committed_but_never_published_are_stored_once_under_the_brokers_key(
    pg_crm, tracker_store
):
    broker = DyingBroker(deliver=5)  # the first turn (4 events) and one of the second
    store = tracker_store(broker)
    asyncio.run(_turns(store, "kf:wm-a", [("早餐几点", "6:30 开始"), ("有泳池吗", "有的")], NOW))
    events = EventStore(pg_crm)
    for raw in broker.delivered:  # what the consumer took from RabbitMQ
        assert events.record(raw) is True
    assert (_stream(pg_crm), len(broker.lost)) == (5, 3)

    done = _backfill(pg_crm, tracker_store).run_once()

    assert (done.read, done.stored) == (8, 3)
    assert _stream(pg_crm) == 8
    # had the publishes gone out after all, the consumer would store nothing: the same keys
    assert [events.record(raw) for raw in broker.lost] == [False, False, False]
    with pg_crm.connect() as conn:
        kinds = conn.execute(
            select(ConversationEvent.type_name, ConversationEvent.intent_name)
            .where(ConversationEvent.sender_id == "kf:wm-a")
            .order_by(ConversationEvent.timestamp)
        ).all()
    assert [k for k, _ in kinds] == ["user", "slot", "bot", "action"] * 2
    assert kinds[4] == ("user", "ask_breakfast")
    # the next pass finds nothing new and reads nothing again
    again = _backfill(pg_crm, tracker_store).run_once()
    assert (again.read, again.stored, again.cursor) == (0, 0, done.cursor)


def test_rows_inside_the_grace_period_wait_for_the_broker(pg_crm, tracker_store):
    store = tracker_store(DyingBroker(deliver=0))  # nothing delivered at all
    asyncio.run(_turns(store, "kf:wm-b", [("几点退房", "12 点")], NOW))

    young = _backfill(pg_crm, tracker_store, clock=lambda: NOW + 10).run_once()
    assert (young.read, young.stored, young.cursor) == (0, 0, 0)
    assert _stream(pg_crm) == 0

    settled = _backfill(pg_crm, tracker_store, clock=lambda: NOW + 61).run_once()
    assert (settled.read, settled.stored) == (4, 4)
    assert _stream(pg_crm) == 4


def test_an_older_row_behind_a_young_one_waits_too_so_no_young_row_is_skipped(
    pg_crm, tracker_store
):
    store = tracker_store(DyingBroker(deliver=0))
    asyncio.run(_turns(store, "kf:wm-young", [("几点退房", "12 点")], NOW + 100))  # ids 1-4
    asyncio.run(_turns(store, "kf:wm-old", [("几点早餐", "7 点")], NOW))  # ids 5-8
    backfill = _backfill(pg_crm, tracker_store, clock=lambda: NOW + 62)
    assert (backfill.run_once().read, _stream(pg_crm)) == (0, 0)
    backfill.clock = lambda: NOW + 162
    assert (backfill.run_once().read, _stream(pg_crm)) == (8, 8)


def test_a_pass_reads_in_batches_up_to_the_first_young_row(pg_crm, tracker_store):
    store = tracker_store(DyingBroker(deliver=0))
    asyncio.run(_turns(store, "kf:wm-c", [("a", "b")] * 5, NOW))  # 20 rows, 1 s per turn
    # three turns are older than the grace period: 12 rows, in batches of 5
    done = _backfill(pg_crm, tracker_store, batch=5, clock=lambda: NOW + 62.5).run_once()
    assert (done.read, done.stored, done.cursor) == (12, 12, 12)


def test_a_pass_that_loses_a_race_with_the_consumer_stores_nothing_and_the_next_one_settles(
    pg_crm, tracker_store, monkeypatch
):
    broker = DyingBroker(deliver=0)
    store = tracker_store(broker)
    asyncio.run(_turns(store, "kf:wm-d", [("有停车场吗", "有的")], NOW))
    events = EventStore(pg_crm)
    backfill = _backfill(pg_crm, tracker_store)
    original = EventBackfill._missing

    def consumer_stores_one_meanwhile(self, session, rows):
        missing = original(self, session, rows)
        events.record(broker.lost[0])  # the delivery came in between: its own transaction
        return missing

    monkeypatch.setattr(EventBackfill, "_missing", consumer_stores_one_meanwhile)
    lost = backfill.run_once()
    assert (lost.stored, lost.cursor) == (0, None)
    assert _stream(pg_crm) == 1  # only the consumer's row; the cursor did not move
    with pg_crm.connect() as conn:
        assert conn.execute(select(EventBackfillCursor.last_event_id)).scalar() in (None, 0)

    monkeypatch.undo()
    done = backfill.run_once()
    assert (done.read, done.stored) == (4, 3)
    assert _stream(pg_crm) == 4


def test_an_unreachable_tracker_store_fails_the_pass_and_the_loop_goes_on(pg_crm, caplog):
    backfill = EventBackfill(
        pg_crm, TrackerEvents("postgresql://nobody@127.0.0.1:1/none"), grace_s=60
    )

    async def two_passes():
        stopping = asyncio.Event()
        task = asyncio.create_task(follow(backfill, 0.05, stopping))
        await asyncio.sleep(0.5)
        stopping.set()
        await asyncio.wait_for(task, timeout=5)

    with caplog.at_level(logging.WARNING, logger="bot.events.backfill"):
        asyncio.run(two_passes())
    failures = [r for r in caplog.records if "pass failed" in r.getMessage()]
    assert len(failures) >= 2  # it kept trying
    with pg_crm.connect() as conn:
        assert conn.execute(select(EventBackfillCursor.last_event_id)).scalar() is None


def test_no_tracker_store_yet_is_nothing_to_do(pg_crm, tmp_path):
    backfill = EventBackfill(pg_crm, TrackerEvents(f"sqlite:///{tmp_path / 'none.db'}"))
    assert backfill.run_once().read == 0


def test_the_command_runs_one_pass_and_says_what_it_stored(
    pg_crm, tracker_store, monkeypatch, capsys
):
    from bot.cli import main

    store = tracker_store(DyingBroker(deliver=2))
    asyncio.run(_turns(store, "kf:wm-e", [("可以寄存行李吗", "可以")], NOW - 120))
    monkeypatch.setenv("TRACKER_DATABASE_URL", tracker_store.url)
    get_settings.cache_clear()

    assert main(["events", "backfill"]) == 0
    assert "read 4 tracker events, stored 4" in capsys.readouterr().out
    assert main(["events", "backfill", "--grace", "0"]) == 0
    assert "read 0 tracker events, stored 0" in capsys.readouterr().out
    assert _stream(pg_crm) == 4


def test_the_command_says_so_when_the_database_is_away(monkeypatch, capsys):
    from bot.cli import main

    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("TRACKER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    assert main(["events", "backfill"]) == 2
    assert "database unavailable" in capsys.readouterr().err

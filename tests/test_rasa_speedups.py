"""The cached action-response validator accepts and rejects exactly what Rasa's own check does."""

from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot.rasa_speedups import cache_action_response_validator

GOOD = {
    "events": [{"event": "slot", "name": "pending_topic", "value": None}],
    "responses": [{"text": "您好"}],
}
BAD = {"events": [{"no_event_key": 1}], "responses": []}


@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(
        RemoteAction, "_validate_action_result", RemoteAction._validate_action_result
    )  # restored after the test
    original = RemoteAction._validate_action_result
    cache_action_response_validator()
    assert RemoteAction._validate_action_result is not original
    return RemoteAction("action_answer_weather", None)


def test_valid_answer_passes(patched):
    assert patched._validate_action_result(GOOD) is True


def test_invalid_answer_raises_the_same_error_as_rasa(patched):
    with pytest.raises(ValidationError) as ours:
        patched._validate_action_result(BAD)
    assert "Failed to validate Action server response" in ours.value.message


@pytest.fixture
def pooled_tracker_store(monkeypatch):
    import rasa.core.tracker_store as tracker_store

    from bot.rasa_speedups import pool_sqlite_tracker_store

    monkeypatch.setattr(tracker_store, "create_engine_kwargs", tracker_store.create_engine_kwargs)
    monkeypatch.setattr(
        tracker_store.SQLTrackerStore, "__init__", tracker_store.SQLTrackerStore.__init__
    )
    pool_sqlite_tracker_store()
    pool_sqlite_tracker_store()  # idempotent
    return tracker_store


async def test_sqlite_tracker_store_is_pooled_in_wal_and_keeps_conversations(
    pooled_tracker_store, tmp_path
):
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from sqlalchemy.pool import QueuePool

    db = tmp_path / "tracker.db"
    store = pooled_tracker_store.SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(db))
    assert isinstance(store.engine.pool, QueuePool)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    tracker = DialogueStateTracker("kf:wm1", [])
    tracker.update(UserUttered("早餐几点", message_id="m1"))
    tracker.update(BotUttered("早餐 6:30-10:30"))
    await store.save(tracker)
    again = pooled_tracker_store.SQLTrackerStore(
        Domain.empty(), dialect="sqlite", db=str(db)
    )  # a restart
    events = (await again.retrieve("kf:wm1")).events
    assert [(type(e).__name__, getattr(e, "text", None)) for e in events][-2:] == [
        ("UserUttered", "早餐几点"),
        ("BotUttered", "早餐 6:30-10:30"),
    ]


def test_in_memory_sqlite_is_left_as_rasa_makes_it(pooled_tracker_store):
    assert pooled_tracker_store.create_engine_kwargs("sqlite://") == {}
    assert "poolclass" not in pooled_tracker_store.create_engine_kwargs(
        "postgresql://u@h/db"
    )  # Rasa pools it


class RecordingBroker:
    """A Rasa event broker that notes each published event and what the store held then."""

    def __init__(self):
        self.published, self.stored_when_published = [], []
        self.store = None

    def publish(self, event, headers=None) -> None:
        self.published.append(event)
        with self.store.engine.connect() as conn:
            self.stored_when_published.append(
                conn.exec_driver_sql("SELECT COUNT(*) FROM events").scalar()
            )

    def is_ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None


@pytest.fixture
def publishing_store(monkeypatch):
    import rasa.core.tracker_store as tracker_store

    from bot.rasa_speedups import publish_stored_events

    for name in ("save", "_retrieve"):  # restored after the test
        monkeypatch.setattr(
            tracker_store.SQLTrackerStore, name, getattr(tracker_store.SQLTrackerStore, name)
        )
    stock = tracker_store.SQLTrackerStore.save
    publish_stored_events()
    publish_stored_events()  # idempotent
    assert tracker_store.SQLTrackerStore.save is not stock
    return tracker_store.SQLTrackerStore


async def _conversation(store_cls, path, broker):
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    store = store_cls(Domain.empty(), dialect="sqlite", db=str(path), event_broker=broker)
    if broker is not None:
        broker.store = store
    tracker = DialogueStateTracker("kf:wm2", [])
    for turn, (said, answer) in enumerate((("早餐几点", "6:30 开始"), ("有泳池吗", "有的"))):
        tracker.update(UserUttered(said, message_id=f"m{turn}", timestamp=100.0 + turn))
        tracker.update(ActionExecuted("utter_x", timestamp=100.2 + turn))
        tracker.update(BotUttered(answer, timestamp=100.3 + turn))
        tracker.update(ActionExecuted("action_listen", timestamp=100.4 + turn))
        await store.save(tracker)
        await store.save(tracker)  # nothing new: nothing stored, nothing published
    return store


async def test_the_store_publishes_what_it_stored_once_after_the_commit_without_rereading(
    publishing_store, tmp_path, monkeypatch
):
    import rasa.core.tracker_store as tracker_store

    async def no_reread(self, sender_id):
        raise AssertionError("save re-read the conversation")

    broker = RecordingBroker()
    monkeypatch.setattr(publishing_store, "retrieve", no_reread)
    store = await _conversation(publishing_store, tmp_path / "ours.db", broker)
    assert [(e["event"], e.get("text") or e.get("name")) for e in broker.published] == [
        ("user", "早餐几点"),
        ("action", "utter_x"),
        ("bot", "6:30 开始"),
        ("action", "action_listen"),
        ("user", "有泳池吗"),
        ("action", "utter_x"),
        ("bot", "有的"),
        ("action", "action_listen"),
    ]
    assert all(e["sender_id"] == "kf:wm2" for e in broker.published)
    assert broker.stored_when_published == [4, 4, 4, 4, 8, 8, 8, 8]  # published after the commit
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM events").scalar() == 8
    monkeypatch.undo()  # Rasa's own save, for comparison: it publishes the same events
    stock_broker = RecordingBroker()
    await _conversation(tracker_store.SQLTrackerStore, tmp_path / "stock.db", stock_broker)
    assert stock_broker.published == broker.published


async def test_without_a_broker_the_stock_save_runs(publishing_store, tmp_path):
    store = await _conversation(publishing_store, tmp_path / "plain.db", None)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM events").scalar() == 8


@pytest.fixture
def sql_threads(publishing_store, monkeypatch):
    """The threads the store opened its database sessions on, in order."""
    import threading

    threads = []
    stock_scope = publishing_store.session_scope

    def session_scope(self):
        threads.append(threading.get_ident())
        return stock_scope(self)

    monkeypatch.setattr(publishing_store, "session_scope", session_scope)
    return threads


async def test_the_stores_sql_runs_off_the_event_loop_and_reads_back_the_same_conversation(
    publishing_store, sql_threads, tmp_path, monkeypatch
):
    """Saving and reading a conversation do their SQL in a worker thread (the loop goes on with
    other guests), and the tracker read back is the one Rasa's own code builds."""
    import threading

    import rasa.core.tracker_store as tracker_store
    from rasa.shared.core.domain import Domain

    store = await _conversation(publishing_store, tmp_path / "threads.db", RecordingBroker())
    ours = await store.retrieve("kf:wm2")
    # every save and read: a worker thread
    assert sql_threads and threading.get_ident() not in sql_threads

    monkeypatch.undo()  # Rasa's own store reading the same file
    stock = tracker_store.SQLTrackerStore(
        Domain.empty(), dialect="sqlite", db=str(tmp_path / "threads.db")
    )
    theirs = await stock.retrieve("kf:wm2")
    assert [e.as_dict() for e in ours.events] == [e.as_dict() for e in theirs.events]
    assert len(ours.events) == 8


async def test_an_in_memory_sqlite_store_keeps_its_sql_on_the_loop(publishing_store, sql_threads):
    """Its pool gives each thread a database of its own: a thread would find no conversation."""
    import threading

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    store = publishing_store(Domain.empty(), dialect="sqlite", db=":memory:")
    tracker = DialogueStateTracker("kf:wm3", [])
    tracker.update(UserUttered("你好", message_id="m1"))
    await store.save(tracker)
    again = await store.retrieve("kf:wm3")
    assert [e.as_dict()["text"] for e in again.events] == ["你好"]
    assert set(sql_threads) == {threading.get_ident()}

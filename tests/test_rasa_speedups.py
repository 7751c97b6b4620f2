"""The cached action-response validator accepts and rejects exactly what Rasa's own check does."""
from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot.rasa_speedups import cache_action_response_validator

GOOD = {"events": [{"event": "slot", "name": "pending_topic", "value": None}],
        "responses": [{"text": "您好"}]}
BAD = {"events": [{"no_event_key": 1}], "responses": []}


@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(RemoteAction, "_validate_action_result",
                        RemoteAction._validate_action_result)  # restored after the test
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
    monkeypatch.setattr(tracker_store.SQLTrackerStore, "__init__", tracker_store.SQLTrackerStore.__init__)
    pool_sqlite_tracker_store()
    pool_sqlite_tracker_store()  # idempotent
    return tracker_store


async def test_sqlite_tracker_store_is_pooled_in_wal_and_keeps_conversations(pooled_tracker_store, tmp_path):
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
    again = pooled_tracker_store.SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(db))  # a restart
    events = (await again.retrieve("kf:wm1")).events
    assert [(type(e).__name__, getattr(e, "text", None)) for e in events][-2:] == [
        ("UserUttered", "早餐几点"), ("BotUttered", "早餐 6:30-10:30")]


def test_in_memory_sqlite_is_left_as_rasa_makes_it(pooled_tracker_store):
    assert pooled_tracker_store.create_engine_kwargs("sqlite://") == {}
    assert "poolclass" not in pooled_tracker_store.create_engine_kwargs("postgresql://u@h/db")  # Rasa pools it

"""Speed-ups applied to the Rasa server process by `bot.rasa_main` (never at import time).

1. Rasa 3.6 checks every action-server answer with `jsonschema.validate(result, schema)`, which first
validates the constant schema against the JSON-Schema metaschema: ~30 ms of CPU on the event loop
per custom action, half of our per-message cost under load (docs/PERFORMANCE.md). We build the
validator once; the answer is still validated, with the same error type and message.

2. Rasa's SQL tracker store on a SQLite file (the embedded default) opens a new connection for
every tracker read and write (SQLAlchemy 1.4's default for file SQLite): we give it a small pool
and the WAL pragmas of bot.crm.db. PostgreSQL is left as Rasa configures it (already pooled).

3. With an event broker (endpoints.production.yml), Rasa's `TrackerStore.save` first calls
`stream_events`, which reads the whole conversation back from the store (`retrieve`: every event
of the session, replayed into a tracker) only to work out which events are new: 15% of the Rasa
event loop at 50 guests on PostgreSQL, more than the turn's own tracker read (docs/PERFORMANCE.md,
`make bench-scale --profile`). The SQL store's `save` already computes the new events (the ones
past the stored count); we publish exactly those, once, after the commit -- so a consumer never
sees an event the store does not hold.

4. The SQL store is synchronous: every turn's read and save blocked Rasa's event loop while
PostgreSQL answered (34% of the loop at 50 guests, mostly waiting on commits, with Rasa using 0.7
of a core: `make bench-scale --profile`). Its read and save run in a worker thread instead, so the
loop parses and predicts other guests' messages meanwhile. One conversation is still handled one
turn at a time (the lock store), so no tracker is used by two threads at once.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _action_response_validator():
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def cache_action_response_validator() -> None:
    """Replace `RemoteAction._validate_action_result` with a version using a prebuilt validator."""
    from jsonschema import exceptions
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    def _validate_action_result(self, result):  # Rasa's contract: True, or raise ValidationError
        error = exceptions.best_match(_action_response_validator().iter_errors(result))
        if error is not None:
            error.message += (
                ". Failed to validate Action server response from API, make sure your response "
                "from the Action endpoint is valid. For more information about the format visit "
                f"{DOCS_BASE_URL}/custom-actions"
            )
            raise error
        return True

    RemoteAction._validate_action_result = _validate_action_result


def pool_sqlite_tracker_store() -> None:
    """Pooled connections (WAL, synchronous=NORMAL) for Rasa's SQLTrackerStore on a SQLite file."""
    import rasa.core.tracker_store as tracker_store
    from sqlalchemy import event
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import QueuePool

    stock = tracker_store.create_engine_kwargs
    if getattr(stock, "_concierge_pooled", False):
        return

    def create_engine_kwargs(url):
        parsed = make_url(str(url))
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return stock(url)
        # Rasa's event loop uses it from one thread, but sessions may close on another.
        return {
            "poolclass": QueuePool,
            "pool_size": 2,
            "max_overflow": 4,
            "connect_args": {"check_same_thread": False},
        }

    create_engine_kwargs._concierge_pooled = True
    tracker_store.create_engine_kwargs = create_engine_kwargs

    stock_init = tracker_store.SQLTrackerStore.__init__

    def __init__(self, *args, **kwargs):
        stock_init(self, *args, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self.engine.dispose()  # connections made before the listener get the pragmas too

    tracker_store.SQLTrackerStore.__init__ = __init__


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _off_the_loop(store) -> bool:
    """Whether the store's SQL may run in a worker thread: not on an in-memory SQLite database,
    whose pool gives every thread a database of its own."""
    url = store.engine.url
    return not (url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


def _store_new_events(store, tracker) -> list:
    """Rasa 3.6's SQLTrackerStore.save without its broker diff: insert the events past the stored
    count, commit, and return them (to publish)."""
    import json

    from rasa.shared.nlu.constants import INTENT_NAME_KEY

    with store.session_scope() as session:
        new_events = list(store._additional_events(session, tracker))
        for event in new_events:  # as Rasa 3.6's SQLTrackerStore.save stores them
            data = event.as_dict()
            session.add(
                store.SQLEvent(
                    sender_id=tracker.sender_id,
                    type_name=event.type_name,
                    timestamp=data.get("timestamp"),
                    intent_name=data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                    action_name=data.get("name"),
                    data=json.dumps(data),
                )
            )
        session.commit()
    return new_events


def _load_tracker(store, sender_id: str, fetch_events_from_all_sessions: bool):
    """Rasa 3.6's SQLTrackerStore._retrieve, as a plain function (its body awaits nothing)."""
    import json

    from rasa.shared.core.trackers import DialogueStateTracker

    with store.session_scope() as session:
        rows = store._event_query(
            session, sender_id, fetch_events_from_all_sessions=fetch_events_from_all_sessions
        ).all()
        events = [json.loads(row.data) for row in rows]
    if store.domain and events:
        return DialogueStateTracker.from_dict(sender_id, events, store.domain.slots)
    return None


def publish_stored_events() -> None:
    """`SQLTrackerStore.save` publishing the events it stores instead of diffing a re-read, and
    the SQL of `save` and of reading a conversation run in a worker thread (4. above)."""
    import asyncio

    import rasa.core.tracker_store as tracker_store

    store_cls = tracker_store.SQLTrackerStore
    if getattr(store_cls.save, "_concierge_publishes_stored", False):
        return

    async def save(self, tracker) -> None:
        if _off_the_loop(self):
            new_events = await asyncio.to_thread(_store_new_events, self, tracker)
        else:
            new_events = _store_new_events(self, tracker)
        if self.event_broker is not None:  # on the loop: the pika broker schedules tasks on it
            await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)

    async def _retrieve(self, sender_id, fetch_events_from_all_sessions):
        if _off_the_loop(self):
            return await asyncio.to_thread(
                _load_tracker, self, sender_id, fetch_events_from_all_sessions
            )
        return _load_tracker(self, sender_id, fetch_events_from_all_sessions)

    save._concierge_publishes_stored = True
    store_cls.save = save
    store_cls._retrieve = _retrieve


def apply_all() -> None:
    cache_action_response_validator()
    pool_sqlite_tracker_store()
    publish_stored_events()

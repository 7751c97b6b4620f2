"""Rasa's SQL tracker store, read and pruned from outside Rasa (export, erasure, retention).

Rasa's `SQLTrackerStore` keeps one row per event in the `events` table (sender_id, type_name,
timestamp, intent_name, action_name, data as JSON text). Rasa reads a conversation back from
those rows every turn and caches nothing across turns, so deleting a sender's rows here really
removes the conversation. The database is TRACKER_DATABASE_URL (PostgreSQL in production; the
SQLite file of endpoints.yml under `make run`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Optional, Sequence

from sqlalchemy import create_engine, inspect, text

from bot.settings import PROJECT_ROOT, Settings, get_settings

TABLE = "events"
# What a person said or was told: the events export shows (the rest is Rasa's bookkeeping).
SPOKEN = ("user", "bot")


def default_url(settings: Optional[Settings] = None) -> str:
    settings = settings or get_settings()
    return settings.tracker_database_url or f"sqlite:///{PROJECT_ROOT / 'var' / 'rasa_tracker.db'}"


class TrackerEvents:
    def __init__(self, url: Optional[str] = None):
        self.url = url or default_url()
        self._engine = None

    @property
    def engine(self):
        if self._engine is None:  # connect on first use, never at construction
            self._engine = create_engine(self.url, future=True, pool_pre_ping=True)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def exists(self) -> bool:
        """False before Rasa ever ran against this database (nothing to export or erase)."""
        if self.url.startswith("sqlite:///") and not self.url.endswith(":memory:"):
            from pathlib import Path

            if not Path(self.url[len("sqlite:///") :]).exists():
                return False
        return inspect(self.engine).has_table(TABLE)

    def conversation(self, sender_ids: Sequence[str]) -> list[dict]:
        """What the guest said and was told, oldest first: {sender_id, type, time, text,
        intent}."""
        if not sender_ids or not self.exists():
            return []
        query = text(
            f"SELECT sender_id, type_name, timestamp, intent_name, data FROM {TABLE} "
            "WHERE sender_id IN :ids AND type_name IN :spoken ORDER BY id"
        ).bindparams(_expanding("ids"), _expanding("spoken"))
        with self.engine.connect() as conn:
            rows = conn.execute(query, {"ids": list(sender_ids), "spoken": list(SPOKEN)}).all()
        found = []
        for sender_id, type_name, timestamp, intent, data in rows:
            try:
                body = json.loads(data) if data else {}
            except ValueError:
                body = {}
            found.append(
                {
                    "sender_id": sender_id,
                    "type": type_name,
                    "time": dt.datetime.fromtimestamp(
                        float(timestamp), dt.timezone.utc
                    ).isoformat(),
                    "text": body.get("text"),
                    "intent": intent,
                }
            )
        return found

    def rows_after(self, last_id: int, limit: int) -> list[tuple]:
        """(id, sender_id, timestamp, data) of the rows after `last_id`, in id order: one range
        read on the primary key (bot.events.backfill)."""
        if not self.exists():
            return []
        query = text(
            f"SELECT id, sender_id, timestamp, data FROM {TABLE} WHERE id > :last "
            "ORDER BY id LIMIT :limit"
        )
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(query, {"last": last_id, "limit": limit})]

    def texts(self, sender_ids: Sequence[str]) -> list[str]:
        """Everything the guest typed (used to find copies of it elsewhere before erasure)."""
        return [
            e["text"] for e in self.conversation(sender_ids) if e["type"] == "user" and e["text"]
        ]

    def delete(self, sender_ids: Sequence[str]) -> int:
        if not sender_ids or not self.exists():
            return 0
        query = text(f"DELETE FROM {TABLE} WHERE sender_id IN :ids").bindparams(_expanding("ids"))
        with self.engine.begin() as conn:
            return conn.execute(query, {"ids": list(sender_ids)}).rowcount or 0

    def delete_older_than(self, cutoff: dt.datetime) -> int:
        """Retention: events older than `cutoff` (aware), for every sender."""
        if not self.exists():
            return 0
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    text(f"DELETE FROM {TABLE} WHERE timestamp < :cutoff"),
                    {"cutoff": cutoff.timestamp()},
                ).rowcount
                or 0
            )


def _expanding(name: str):
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)

"""A durable queue for CRM writes that could not happen because the database was down.

An action that gets `StoreUnavailable` while writing what the guest asked for (a tag, an order, a
complaint, a handoff, an opt-out...) appends one entry here, tells the guest we will follow up,
and carries on. The entry is replayed into the CRM later, by the next action that finds the
store reachable again (`replay_if_pending`) or by `concierge spool replay` (the worker can
call `replay` on a timer).

Two backends behind one small interface, chosen by `REDIS_URL`:
- `FileSpool`: JSON lines in `var/spool/crm-writes.jsonl`, appended under an exclusive file lock
  and fsync'd, so an entry written is an entry kept across a crash or restart.
- `RedisSpool`: a Redis list (`RPUSH`), shared by every action-server replica.

Delivery is at least once: an entry is removed only after its handler returned. Handlers are the
services' own `apply_spooled` functions, registered by op name in `bot.flows.replay_handlers`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from bot.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

DEFAULT_SPOOL_FILE = PROJECT_ROOT / "var" / "spool" / "crm-writes.jsonl"
REDIS_KEY = "concierge:spool:crm-writes"

Handler = Callable[[dict], Any]


def new_entry(op: str, sender_id: str, payload: Mapping[str, Any]) -> dict:
    return {
        "id": uuid.uuid4().hex,
        "op": op,
        "sender_id": sender_id,
        "payload": dict(payload),
        "queued_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "attempts": 0,
    }


class Spool(Protocol):
    def append(self, entry: dict) -> None: ...
    def peek(self) -> dict | None: ...
    def pop(self, entry_id: str) -> None: ...
    def requeue_head(self, entry: dict) -> None: ...
    def __len__(self) -> int: ...


class FileSpool:
    """JSON lines, one entry each; whole-file lock for every read-modify-write."""

    def __init__(self, path: Path | str = DEFAULT_SPOOL_FILE):
        self.path = Path(path)
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._thread_lock, _private_open(self.path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield fh
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _read(fh) -> list[dict]:
        fh.seek(0)
        entries = []
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line after a crash: keep going
                log.error("spool: skipping an unreadable line (%d characters)", len(line))
        return entries

    def _rewrite(self, entries: list[dict]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with _private_open(tmp, "w") as out:
            for entry in entries:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def append(self, entry: dict) -> None:
        with self._locked() as fh:
            fh.seek(0, os.SEEK_END)
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def entries(self) -> list[dict]:
        with self._locked() as fh:
            return self._read(fh)

    def peek(self) -> dict | None:
        entries = self.entries()
        return entries[0] if entries else None

    def pop(self, entry_id: str) -> None:
        with self._locked() as fh:
            self._rewrite([e for e in self._read(fh) if e.get("id") != entry_id])

    def requeue_head(self, entry: dict) -> None:
        """Write back an entry (its attempt count changed) in place."""
        with self._locked() as fh:
            self._rewrite([entry if e.get("id") == entry["id"] else e for e in self._read(fh)])

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        return len(self.entries())

    def remove_sender(self, sender_ids) -> int:
        """Erasure: drop every queued (and parked) entry of these senders; how many went."""
        ids = set(sender_ids)
        removed = 0
        if not self.path.exists() and not _dead_path(self).exists():
            return 0
        with self._locked() as fh:
            entries = self._read(fh)
            kept = [e for e in entries if e.get("sender_id") not in ids]
            removed += len(entries) - len(kept)
            if removed:
                self._rewrite(kept)
        dead = _dead_path(self)
        if dead.exists():
            with self._thread_lock, _private_open(dead, "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                entries = self._read(fh)
                kept = [e for e in entries if e.get("sender_id") not in ids]
                if len(kept) != len(entries):
                    fh.seek(0)
                    fh.truncate()
                    fh.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in kept)
                    fh.flush()
                    os.fsync(fh.fileno())
                    removed += len(entries) - len(kept)
        return removed


class RedisSpool:
    def __init__(self, url: str, key: str = REDIS_KEY, client: Any = None):
        if client is None:
            import redis  # imported on use: the embedded default has no Redis

            client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        self.client = client
        self.key = key

    def append(self, entry: dict) -> None:
        self.client.rpush(self.key, json.dumps(entry, ensure_ascii=False))

    def entries(self) -> list[dict]:
        return [json.loads(raw) for raw in self.client.lrange(self.key, 0, -1)]

    def peek(self) -> dict | None:
        raw = self.client.lindex(self.key, 0)
        return json.loads(raw) if raw else None

    def pop(self, entry_id: str) -> None:
        for raw in self.client.lrange(self.key, 0, 50):
            if json.loads(raw).get("id") == entry_id:
                self.client.lrem(self.key, 1, raw)
                return

    def requeue_head(self, entry: dict) -> None:
        head = self.client.lindex(self.key, 0)
        if head and json.loads(head).get("id") == entry["id"]:
            self.client.lset(self.key, 0, json.dumps(entry, ensure_ascii=False))

    def __len__(self) -> int:
        return int(self.client.llen(self.key))

    def remove_sender(self, sender_ids) -> int:
        """Erasure: drop every queued entry of these senders; how many went."""
        ids = set(sender_ids)
        removed = 0
        for raw in self.client.lrange(self.key, 0, -1):
            try:
                sender = json.loads(raw).get("sender_id")
            except ValueError:
                continue
            if sender in ids:
                removed += int(self.client.lrem(self.key, 0, raw) or 0)
        return removed


def make_spool(redis_url: str | None = None, path: Path | str | None = None) -> Spool:
    if redis_url:
        return RedisSpool(redis_url)
    return FileSpool(path or DEFAULT_SPOOL_FILE)


class StillUnavailable(Exception):
    """Replay stopped: the store is still down (the entry stays queued)."""


def replay(spool: Spool, handlers: Mapping[str, Handler], *, limit: int = 100) -> int:
    """Apply queued entries in order; returns how many were applied. Stops at the first entry
    whose handler finds the store still unavailable. An entry whose handler fails for another
    reason (a bug, a guest deleted meanwhile) is parked after 5 attempts with an error log, so
    one bad entry cannot block the queue."""
    from bot.crm.store import StoreUnavailable

    applied = 0
    for _ in range(limit):
        entry = spool.peek()
        if entry is None:
            break
        handler = handlers.get(entry.get("op"))
        if handler is None:
            log.error("spool: no handler for op %r; parking entry %s", entry.get("op"), entry["id"])
            _park(spool, entry)
            continue
        try:
            handler(entry)
        except StoreUnavailable:
            break
        except Exception:
            entry["attempts"] = int(entry.get("attempts", 0)) + 1
            log.exception(
                "spool: entry %s (%s) failed, attempt %d",
                entry["id"],
                entry["op"],
                entry["attempts"],
            )
            if entry["attempts"] >= 5:
                _park(spool, entry)
            else:
                spool.requeue_head(entry)
            break
        spool.pop(entry["id"])
        applied += 1
    return applied


def _private_open(path: Path, mode: str):
    """Open for text, creating the file readable by this user only (0600): it holds guests'
    own words. An existing file is tightened too."""
    flags = {
        "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
        "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    }[mode]
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, encoding="utf-8")


def _dead_path(spool) -> Path:
    if isinstance(spool, FileSpool):
        return spool.path.with_name(spool.path.stem + ".dead.jsonl")
    return DEFAULT_SPOOL_FILE.with_name("crm-writes.dead.jsonl")


def _park(spool: Spool, entry: dict) -> None:
    """Move an entry that cannot be applied out of the way, into a dead-letter file."""
    dead = _dead_path(spool)
    dead.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _private_open(dead, "a") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    spool.pop(entry["id"])

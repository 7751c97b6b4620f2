"""Tracker events the broker never delivered, taken from Rasa's tracker store by id.

A Rasa server publishes a turn's events only after committing them (bot/rasa_speedups.py: a
consumer never sees an event the store does not hold). The other side of that choice: a server
killed between its commit and its publish leaves events in the tracker store that never reach
RabbitMQ (`make bench-scale`: 453 after one `kill -9`). The tracker store's `events` table is the
outbox those events are still in. `EventBackfill.run_once` reads it after a cursor, in id order
(one range read on the primary key, not a scan), stores whatever `conversation_events` lacks under
the key the broker's delivery would have had, and moves the cursor, in one CRM transaction.

Only rows older than the grace period are read: a live turn's events come through the broker
first (keeping `conversation_events.id` in publication order for the NLU inbox collector), and a
delivery that arrives after its row was backfilled is a no-op (unique key). A row is committed
milliseconds after Rasa takes its id, far inside the grace, so no row appears behind the cursor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Callable, Optional

from prometheus_client import Counter
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.events.models import EventBackfillCursor
from bot.events.store import TABLE, MalformedEvent, parse_event
from bot.tracker_events import TrackerEvents

log = logging.getLogger(__name__)

SOURCE = "rasa"
BATCH = 1000

BACKFILLED = Counter(
    "concierge_events_backfilled",
    "Tracker events stored from the tracker store because the broker never delivered them",
)


@dataclass(frozen=True)
class Pass:
    read: int  # tracker rows looked at
    stored: int  # of those, missing from conversation_events and stored now
    cursor: Optional[int]  # the last tracker event id settled (None: a pass lost a race)


def broker_body(sender_id: str, data: Optional[str]) -> dict:
    """The event as Rasa's event broker publishes it (TrackerStore._stream_new_events: the
    sender id, then the event's dict -- the same dict the SQL store keeps as JSON in `data`)."""
    body = {"sender_id": sender_id}
    event = json.loads(data) if data else None
    if not isinstance(event, dict):
        raise MalformedEvent("tracker row holds no event object")
    body.update(event)
    return body


class EventBackfill:
    def __init__(
        self,
        crm: Engine,
        tracker: TrackerEvents,
        *,
        grace_s: float = 60.0,
        batch: int = BATCH,
        clock: Callable[[], float] = time.time,
    ):
        self.crm = crm
        self.tracker = tracker
        self.grace_s = grace_s
        self.batch = batch
        self.clock = clock

    def run_once(self) -> Pass:
        """Settle every tracker row older than the grace period; a pass of several batches."""
        read = stored = 0
        while True:
            step = self._batch()
            read, stored = read + step.read, stored + step.stored
            if step.read < self.batch:
                return Pass(read, stored, step.cursor)

    def _batch(self) -> Pass:
        try:
            return self._settle_batch()
        except IntegrityError:  # the consumer stored one of them meanwhile: the next pass
            log.info("events backfill: raced with the consumer; trying again next pass")
            return Pass(0, 0, None)

    def _settle_batch(self) -> Pass:
        cutoff = self.clock() - self.grace_s
        with Session(self.crm) as s, s.begin():
            # FOR UPDATE: two consumers (a second one started by mistake) take turns
            cursor = s.get(EventBackfillCursor, SOURCE, with_for_update=True)
            if cursor is None:
                cursor = EventBackfillCursor(source=SOURCE, last_event_id=0)
                s.add(cursor)
                s.flush()
            settled = []
            for row in self.tracker.rows_after(cursor.last_event_id, self.batch):
                if row[2] is not None and float(row[2]) > cutoff:
                    break  # young: its broker delivery comes first; it and the rest wait
                settled.append(row)
            missing = self._missing(s, settled)
            if missing:
                s.execute(insert(TABLE), missing)
                BACKFILLED.inc(len(missing))
                log.warning(
                    "events backfill: %d tracker events (ids %s-%s) had not come through the "
                    "broker; stored from the tracker store",
                    len(missing),
                    settled[0][0],
                    settled[-1][0],
                )
            if settled:
                cursor.last_event_id = int(settled[-1][0])
            # fewer than a batch (a young row, or the end): run_once stops
            return Pass(len(settled), len(missing), cursor.last_event_id)

    def _missing(self, s: Session, rows: list[tuple]) -> list[dict]:
        candidates: dict[str, dict] = {}
        now = dt.datetime.now(dt.timezone.utc)
        for event_id, sender_id, _stamp, data in rows:
            try:
                row = parse_event(broker_body(sender_id, data))
            except (MalformedEvent, ValueError) as exc:
                # Rasa wrote it, so it is not ours to drop silently: say which, and go on
                log.error(
                    "events backfill: tracker event %s unreadable (%s); skipped", event_id, exc
                )
                continue
            row["received_at"] = now
            candidates.setdefault(row["event_key"], row)
        if not candidates:
            return []
        present = set(
            s.execute(select(TABLE.c.event_key).where(TABLE.c.event_key.in_(list(candidates))))
            .scalars()
            .all()
        )
        return [row for key, row in candidates.items() if key not in present]


async def follow(backfill: EventBackfill, interval_s: float, stopping) -> None:
    """A pass every `interval_s` until `stopping` (an asyncio.Event) is set; in a thread, since
    both reads are blocking SQL. A failed pass (either database away) is retried next time: the
    cursor moved only with what was stored."""
    while not stopping.is_set():
        try:
            await asyncio.to_thread(backfill.run_once)
        except Exception as exc:
            log.warning(
                "events backfill: pass failed (%s: %s); next in %.0f s",
                type(exc).__name__,
                exc,
                interval_s,
            )
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval_s)
        except asyncio.TimeoutError:
            pass

"""Fills the NLU inbox from the conversation events, off the message path.

The bot never waits for this: a worker (`concierge nlu collect --follow`, a Procfile process)
reads the CRM's `conversation_events` table (Rasa's tracker events as its event broker published
them, stored by `concierge events consume`: bot.events), or -- given a tracker store URL, e.g.
the development set-up without RabbitMQ -- Rasa's own `events` table, after a cursor (the last
event id it has seen, stored with the inbox rows it produced, in one transaction), in batches, and
files guest messages that:

- `fallback`: were classified `nlu_fallback`;
- `low_confidence`: had a top intent below `NLU_INBOX_LOW_CONFIDENCE`;
- `rephrase`: were followed, within `NLU_INBOX_REPHRASE_WINDOW_S`, by a similar message from the
  same guest (the guest said it again in other words: the first try did not land);
- `handoff`: led to a human handoff: the message before the guest asked for a person
  (`action_request_human`), or the one after which the bot gave up (`fallback_route`
  = `handed_off`);
- `takeover`: were the last thing the bot answered before an advisor took the conversation over
  (the `pause` event the takeover appends).

Each signal is attributed when the later event that reveals it arrives, so one pass over the
events in id order is enough and nothing waits for a settling time. Collecting twice is harmless:
messages are unique per (source, event id) and a second signal only adds a reason.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from sqlalchemy import Float, Integer, String, Text, column, create_engine, select, table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.training import models as m
from bot.training.text import (
    NEAR_DUPLICATE,
    comparison_key,
    display_text,
    group_key,
    overlap,
    sender_hash,
    similarity,
)

log = logging.getLogger(__name__)

NLU_FALLBACK = "nlu_fallback"
REQUEST_HUMAN_ACTION = "action_request_human"
HANDED_OFF = ("fallback_route", "handed_off")
REASONS = ("fallback", "low_confidence", "rephrase", "handoff", "takeover")
MIN_REPHRASE_CHARS = 4  # "好的" twice is not a rephrase
REPHRASE_OVERLAP = 0.5  # bot.training.text.overlap of the two messages
CONTEXT_EVENTS = 3  # guest/bot lines kept on each side of the message
TOP_ALTERNATIVES = 5


@dataclass(frozen=True)
class Event:
    id: int
    sender_id: str
    type_name: str
    timestamp: float
    intent_name: Optional[str]
    action_name: Optional[str]
    data: dict

    @classmethod
    def from_row(cls, row: Any) -> "Event":
        try:
            data = json.loads(row.data) if row.data else {}
        except (TypeError, ValueError):  # a damaged row: keep going, it has no text to file
            data = {}
        return cls(
            row.id,
            row.sender_id,
            row.type_name,
            row.timestamp or 0.0,
            row.intent_name,
            row.action_name,
            data if isinstance(data, dict) else {},
        )

    @property
    def text(self) -> str:
        return self.data.get("text") or ""

    @property
    def parse(self) -> dict:
        return self.data.get("parse_data") or {}


def _tracker_engine(url: str) -> Engine:
    return create_engine(url, future=True, pool_pre_ping=True)


# Rasa's SQLTrackerStore table, read as it is (plain JSON text in `data`).
RASA_EVENTS = table(
    "events",
    column("id", Integer),
    column("sender_id", String),
    column("type_name", String),
    column("timestamp", Float),
    column("intent_name", String),
    column("action_name", String),
    column("data", Text),
)


def classifier_ranking(parse: dict) -> list[list]:
    """The classifier's alternatives, best first, without the fallback pseudo-intent."""
    ranking = [
        [r.get("name"), round(float(r.get("confidence") or 0.0), 4)]
        for r in parse.get("intent_ranking") or []
        if r.get("name") != NLU_FALLBACK
    ]
    if not ranking:
        intent = parse.get("intent") or {}
        if intent.get("name") and intent.get("name") != NLU_FALLBACK:
            ranking = [[intent["name"], round(float(intent.get("confidence") or 0.0), 4)]]
    return ranking[:TOP_ALTERNATIVES]


class InboxCollector:
    """One tracker store → the inbox tables in the CRM database."""

    def __init__(
        self,
        crm_engine: Engine,
        tracker: Engine | str | None = None,
        *,
        hash_key: str,
        low_confidence: float = 0.5,
        rephrase_window_s: float = 180.0,
        source: Optional[str] = None,
        batch: int = 500,
    ):
        """`tracker` None: the CRM's conversation_events (the event stream; cursor "events");
        a URL or engine: that tracker store's `events` table (cursor "rasa")."""
        from bot.events.models import ConversationEvent

        self.crm = crm_engine
        if tracker is None:
            self.tracker, self.table = crm_engine, ConversationEvent.__table__
        else:
            self.tracker = _tracker_engine(tracker) if isinstance(tracker, str) else tracker
            self.table = RASA_EVENTS
        self.source = source or ("events" if tracker is None else "rasa")
        self.hash_key = hash_key
        self.low_confidence = low_confidence
        self.rephrase_window_s = rephrase_window_s
        self.batch = batch

    # ---- the loop -------------------------------------------------------------------------
    def collect_once(self) -> int:
        """Read up to `batch` new events; returns how many events were read (0: up to date)."""
        try:
            with Session(self.crm, future=True) as s, s.begin():
                # the row lock makes a second collector (CLI and worker) wait, not double-file
                cursor = s.get(m.InboxCursor, self.source, with_for_update=True)
                if cursor is None:
                    cursor = m.InboxCursor(source=self.source, last_event_id=0)
                    s.add(cursor)
                    s.flush()
                events = self._events_after(cursor.last_event_id)
                for ev in events:
                    for target, reason in self._signals(ev):
                        self._file(s, target, reason)
                if events:
                    cursor.last_event_id = events[-1].id
                return len(events)
        except IntegrityError:  # another collector filed the same events first: nothing lost
            log.info("nlu inbox: another collector got there first")
            return 0

    def collect_all(self) -> int:
        total = 0
        while True:
            n = self.collect_once()
            total += n
            if n < self.batch:
                return total

    def follow(self, interval_s: float, stop: Optional[Any] = None) -> None:
        """Collect every `interval_s` until `stop` (a threading.Event) is set; errors are logged
        and retried on the next round (the tracker store or the CRM may be briefly away)."""
        while stop is None or not stop.is_set():
            try:
                self.collect_all()
            except Exception:
                log.exception("nlu inbox collection failed; retrying in %.0f s", interval_s)
            if stop is not None:
                stop.wait(interval_s)
            else:
                time.sleep(interval_s)

    # ---- reading the events ----------------------------------------------------------------
    def _query(self, query) -> list[Event]:
        with self.tracker.connect() as conn:
            return [Event.from_row(r) for r in conn.execute(query)]

    def _select(self):
        t = self.table
        return select(
            t.c.id,
            t.c.sender_id,
            t.c.type_name,
            t.c.timestamp,
            t.c.intent_name,
            t.c.action_name,
            t.c.data,
        )

    def _events_after(self, last_id: int) -> list[Event]:
        c = self.table.c
        return self._query(self._select().where(c.id > last_id).order_by(c.id).limit(self.batch))

    def _previous_user(self, sender_id: str, before_id: int) -> Optional[Event]:
        c = self.table.c
        rows = self._query(
            self._select()
            .where(c.sender_id == sender_id, c.type_name == "user", c.id < before_id)
            .order_by(c.id.desc())
            .limit(1)
        )
        return rows[0] if rows else None

    def _between(self, sender_id: str, after_id: int, before_id: int) -> list[Event]:
        c = self.table.c
        return self._query(
            self._select()
            .where(c.sender_id == sender_id, c.id > after_id, c.id < before_id)
            .order_by(c.id)
        )

    def _context(self, ev: Event) -> list[dict]:
        c = self.table.c
        spoken = self._select().where(c.sender_id == ev.sender_id, c.type_name.in_(("user", "bot")))
        before = self._query(spoken.where(c.id < ev.id).order_by(c.id.desc()).limit(CONTEXT_EVENTS))
        after = self._query(spoken.where(c.id > ev.id).order_by(c.id).limit(CONTEXT_EVENTS))
        lines = []
        for e in [*reversed(before), ev, *after]:
            if e.type_name == "bot" and not e.text:
                continue
            lines.append(
                {
                    "who": "guest" if e.type_name == "user" else "bot",
                    "text": display_text(e.text) if e.type_name == "user" else e.text,
                    "this": e.id == ev.id,
                }
            )
        return lines

    # ---- which messages a new event sends to the inbox -------------------------------------
    def _signals(self, ev: Event) -> Iterable[tuple[Event, str]]:
        if ev.type_name == "user" and ev.text.strip() and not ev.text.startswith("/"):
            intent = (ev.parse.get("intent") or {}).get("name")
            ranking = classifier_ranking(ev.parse)
            if intent == NLU_FALLBACK:
                yield ev, "fallback"
            elif ranking and ranking[0][1] < self.low_confidence:
                yield ev, "low_confidence"
            prev = self._previous_user(ev.sender_id, ev.id)
            if prev is not None and self._is_rephrase(prev, ev):
                yield prev, "rephrase"
        elif ev.type_name == "action" and ev.action_name == REQUEST_HUMAN_ACTION:
            request = self._previous_user(ev.sender_id, ev.id)
            if request is not None:
                gave_up_on = self._previous_user(ev.sender_id, request.id)
                if gave_up_on is not None and self._within_window(gave_up_on, request):
                    yield gave_up_on, "handoff"
        elif ev.type_name == "slot" and (ev.data.get("name"), ev.data.get("value")) == HANDED_OFF:
            last = self._previous_user(ev.sender_id, ev.id)
            if last is not None:
                yield last, "handoff"
        elif ev.type_name == "pause":
            last = self._previous_user(ev.sender_id, ev.id)
            if last is not None and any(
                e.type_name == "bot" and e.text for e in self._between(ev.sender_id, last.id, ev.id)
            ):
                yield last, "takeover"

    def _within_window(self, first: Event, second: Event) -> bool:
        return 0 <= second.timestamp - first.timestamp <= self.rephrase_window_s

    def _is_rephrase(self, first: Event, second: Event) -> bool:
        if first.text.startswith("/") or not self._within_window(first, second):
            return False
        if len(comparison_key(first.text)) < MIN_REPHRASE_CHARS:
            return False
        return overlap(first.text, second.text) >= REPHRASE_OVERLAP

    # ---- writing the inbox ----------------------------------------------------------------
    def _file(self, s: Session, ev: Event, reason: str) -> None:
        existing = s.execute(
            select(m.InboxMessage).where(
                m.InboxMessage.source == self.source, m.InboxMessage.event_id == ev.id
            )
        ).scalar_one_or_none()
        if existing is not None:
            if reason not in existing.reasons:
                existing.reasons = [*existing.reasons, reason]
            return
        shown = display_text(ev.text)
        said_at = dt.datetime.fromtimestamp(ev.timestamp, dt.timezone.utc)
        item = self._item_for(s, shown, said_at)
        intent = ev.parse.get("intent") or {}
        s.add(
            m.InboxMessage(
                item_id=item.id,
                source=self.source,
                event_id=ev.id,
                sender_hash=sender_hash(ev.sender_id, self.hash_key),
                text=shown,
                reasons=[reason],
                intent=intent.get("name"),
                confidence=intent.get("confidence"),
                ranking=classifier_ranking(ev.parse),
                context=json.dumps(self._context(ev), ensure_ascii=False),
                said_at=said_at,
            )
        )
        s.flush()

    def _item_for(self, s: Session, shown: str, said_at: dt.datetime) -> m.InboxItem:
        """The item of an identical text (any status), else a near-identical open one, else new."""
        key = group_key(shown)
        item = (
            s.execute(
                select(m.InboxItem).where(m.InboxItem.group_key == key).order_by(m.InboxItem.id)
            )
            .scalars()
            .first()
        )
        if item is None:
            for candidate in s.execute(
                select(m.InboxItem).where(m.InboxItem.status == "open")
            ).scalars():
                if similarity(candidate.text, shown) >= NEAR_DUPLICATE:
                    item = candidate
                    break
        if item is None:
            item = m.InboxItem(
                group_key=key, text=shown, status="open", first_seen=said_at, last_seen=said_at
            )
            s.add(item)
            s.flush()
        else:
            item.last_seen = max(item.last_seen, said_at)
        return item

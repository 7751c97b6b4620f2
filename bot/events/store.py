"""The `conversation_events` table: recording what the broker delivers (insert-or-ignore by the
event's key), and the counts the staff console's reports need (bot.console.reports).

`record` runs in one short transaction per delivery; the consumer acknowledges the delivery only
after it returned, so a crash between the two redelivers an event this table already holds and
the unique key makes that a no-op."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any, Mapping, Optional

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.events.models import ConversationEvent

TABLE = ConversationEvent.__table__
# What brought a person in (the NLU inbox collector reads the same three signals).
REQUEST_HUMAN_ACTION = "action_request_human"
HANDED_OFF_SLOT = ("fallback_route", "handed_off")
NLU_FALLBACK = "nlu_fallback"


class MalformedEvent(ValueError):
    """A delivery that is not a Rasa tracker event (dead-lettered, never retried)."""


def event_key(body: Mapping[str, Any]) -> str:
    """A hash of the whole event: the same event delivered twice has the same key, two events
    differ at least in their timestamp or content."""
    canonical = json.dumps(
        body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_event(raw: bytes | str | Mapping[str, Any]) -> dict:
    """The row for one delivery, or MalformedEvent."""
    if isinstance(raw, (bytes, str)):
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedEvent(f"not JSON: {exc}") from None
    else:
        body = dict(raw)
    if not isinstance(body, dict):
        raise MalformedEvent("not a JSON object")
    sender, kind, stamp = body.get("sender_id"), body.get("event"), body.get("timestamp")
    if not isinstance(sender, str) or not sender or not isinstance(kind, str) or not kind:
        raise MalformedEvent("no sender_id or event type")
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        raise MalformedEvent("no numeric timestamp")
    intent = ((body.get("parse_data") or {}).get("intent") or {}) if kind == "user" else {}
    if not isinstance(intent, dict):
        raise MalformedEvent("parse_data.intent is not an object")
    confidence = intent.get("confidence")
    return {
        "event_key": event_key(body),
        "sender_id": sender[:255],
        "type_name": kind[:64],
        "timestamp": float(stamp),
        "intent_name": (intent.get("name") or None) if kind == "user" else None,
        "confidence": float(confidence) if isinstance(confidence, (int, float)) else None,
        "action_name": _name(body) if kind == "action" else None,
        "slot_name": _name(body) if kind == "slot" else None,
        "data": json.dumps(body, ensure_ascii=False),
    }


class EventStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, raw) -> bool:
        """Store one delivered event; False when it was already there (a redelivery).
        MalformedEvent for a body that is not a tracker event."""
        row = parse_event(raw)
        row["received_at"] = dt.datetime.now(dt.timezone.utc)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(TABLE).values(**row))
        except IntegrityError:
            with self.engine.connect() as conn:  # a duplicate, or some other constraint?
                if (
                    conn.execute(
                        select(TABLE.c.id).where(TABLE.c.event_key == row["event_key"])
                    ).first()
                    is None
                ):
                    raise
            return False
        return True

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(TABLE)).scalar_one())

    # ---- what the reports read -----------------------------------------------------------
    def usage_since(self, since: dt.datetime) -> dict:
        """Guest messages per predicted intent, the senders who wrote, and the senders the bot
        handed to a person (asked for one, gave up, or an advisor took over), since `since`."""
        cutoff = since.timestamp()
        with self.engine.connect() as conn:
            intents = conn.execute(
                select(TABLE.c.intent_name, func.count())
                .where(TABLE.c.type_name == "user", TABLE.c.timestamp >= cutoff)
                .group_by(TABLE.c.intent_name)
            ).all()
            senders = (
                conn.execute(
                    select(TABLE.c.sender_id)
                    .distinct()
                    .where(TABLE.c.type_name == "user", TABLE.c.timestamp >= cutoff)
                )
                .scalars()
                .all()
            )
            handoff_rows = conn.execute(
                select(TABLE.c.sender_id, TABLE.c.type_name, TABLE.c.data).where(
                    TABLE.c.timestamp >= cutoff,
                    (TABLE.c.type_name == "pause")
                    | (
                        (TABLE.c.type_name == "action")
                        & (TABLE.c.action_name == REQUEST_HUMAN_ACTION)
                    )
                    | ((TABLE.c.type_name == "slot") & (TABLE.c.slot_name == HANDED_OFF_SLOT[0])),
                )
            ).all()
        handed = set()
        for sender, kind, data in handoff_rows:
            if kind == "slot":
                body = _json(data)
                if (body.get("name"), body.get("value")) != HANDED_OFF_SLOT:
                    continue
            handed.add(sender)
        counts = {name or "(none)": int(n) for name, n in intents}
        return {
            "intents": counts,
            "senders": sorted(senders),
            "handed_off": sorted(handed),
            "fallbacks": counts.get(NLU_FALLBACK, 0),
        }

    def delete_older_than(self, cutoff: dt.datetime) -> int:
        with self.engine.begin() as conn:
            return (
                conn.execute(delete(TABLE).where(TABLE.c.timestamp < cutoff.timestamp())).rowcount
                or 0
            )


def _name(body: Mapping[str, Any]) -> Optional[str]:
    name = body.get("name")
    return name[:255] if isinstance(name, str) else None


def _json(data: Optional[str]) -> dict:
    try:
        body = json.loads(data) if data else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

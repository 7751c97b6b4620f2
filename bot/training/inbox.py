"""What admins do with the NLU inbox: list items, label them into the training data, discard
them; and what guest erasure does to it.

An item is a group of near-identical guest texts (bot.training.collector files them). Admins see
the normalised text (personal numbers masked), how often it came, why it was collected, what the
model predicted with which confidence and alternatives, and the conversation around the latest
occurrence; never who wrote it. Every decision is audited with who made it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.crm.db import as_engine
from bot.crm.store import CRMStore
from bot.nlu.labels import Entity, LabelRefused, add_example
from bot.settings import PROJECT_ROOT
from bot.training import models as m
from bot.training.text import sender_hash

OUT_OF_SCOPE = "out_of_scope"


class ItemNotFound(LookupError):
    pass


class ItemClosed(ValueError):
    """The item was already labelled or discarded."""


@dataclass(frozen=True)
class DataPaths:
    nlu_dir: Path = PROJECT_ROOT / "data" / "nlu"
    holdout_dir: Path = PROJECT_ROOT / "tests" / "nlu_holdout"
    domain: Path = PROJECT_ROOT / "domain.yml"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class InboxService:
    def __init__(
        self, engine_or_url: Engine | str | None, store: CRMStore, paths: DataPaths = DataPaths()
    ):
        self.engine = as_engine(engine_or_url)
        self.store = store
        self.paths = paths

    # ---- reading -------------------------------------------------------------------------
    def items(self, status: Optional[str] = "open", limit: int = 100) -> list[dict]:
        """Items, most frequent first (then most recent); `status=None` lists every status."""
        with Session(self.engine, future=True) as s:
            counts = (
                select(m.InboxMessage.item_id, func.count().label("n"))
                .group_by(m.InboxMessage.item_id)
                .subquery()
            )
            q = (
                select(m.InboxItem, counts.c.n)
                .join(counts, counts.c.item_id == m.InboxItem.id)
                .order_by(counts.c.n.desc(), m.InboxItem.last_seen.desc())
                .limit(limit)
            )
            if status is not None:
                q = q.where(m.InboxItem.status == status)
            rows = s.execute(q).all()
            return [self._describe(s, item, n, with_context=False) for item, n in rows]

    def item(self, item_id: int) -> dict:
        with Session(self.engine, future=True) as s:
            item = s.get(m.InboxItem, item_id)
            if item is None:
                raise ItemNotFound(f"no inbox item {item_id}")
            n = s.scalar(select(func.count()).where(m.InboxMessage.item_id == item_id))
            return self._describe(s, item, n, with_context=True)

    @staticmethod
    def _describe(s: Session, item: m.InboxItem, n: int, *, with_context: bool) -> dict:
        msgs = (
            s.execute(
                select(m.InboxMessage)
                .where(m.InboxMessage.item_id == item.id)
                .order_by(m.InboxMessage.said_at.desc())
            )
            .scalars()
            .all()
        )
        latest = msgs[0] if msgs else None
        reasons = Counter(r for msg in msgs for r in msg.reasons)
        variants = sorted({msg.text for msg in msgs} - {item.text})
        out: dict[str, Any] = {
            "id": item.id,
            "text": item.text,
            "status": item.status,
            "count": n,
            "variants": variants[:5],
            "reasons": dict(reasons),
            "predicted": latest.intent if latest else None,
            "confidence": round(latest.confidence, 4) if latest and latest.confidence else None,
            "alternatives": latest.ranking if latest else [],
            "first_seen": item.first_seen.isoformat(),
            "last_seen": item.last_seen.isoformat(),
            "label": item.label,
            "decided_by": item.decided_by,
        }
        if with_context and latest is not None and latest.context:
            out["context"] = json.loads(latest.context)
        return out

    # ---- deciding --------------------------------------------------------------------------
    def label(
        self, item_id: int, intent: str, *, actor: str, entities: Sequence[Entity] = ()
    ) -> dict:
        """Write the item's text as an `intent` example into data/nlu (see bot.nlu.labels).
        Raises ItemNotFound, ItemClosed, LabelRefused (the reason is the message)."""
        item = self._open_item(item_id)
        try:
            result = add_example(
                item["text"],
                intent,
                nlu_dir=self.paths.nlu_dir,
                holdout_dir=self.paths.holdout_dir,
                domain_path=self.paths.domain,
                entities=entities,
            )
        except LabelRefused as exc:
            self.store.record_audit(
                actor,
                "nlu.label_refused",
                "nlu_inbox_item",
                item_id,
                {"intent": intent, "reason": str(exc)},
            )
            raise
        label = {
            "intent": intent,
            "entities": [e.__dict__ for e in entities],
            "file": str(result.file.relative_to(self.paths.nlu_dir.parent.parent))
            if result.file.is_relative_to(self.paths.nlu_dir.parent.parent)
            else str(result.file),
            "line": result.line,
            "written": result.written,
        }
        self._close(item_id, "labelled", actor, label)
        self.store.record_audit(actor, "nlu.label", "nlu_inbox_item", item_id, label)
        return {**item, "status": "labelled", "label": label}

    def mark_out_of_scope(self, item_id: int, *, actor: str) -> dict:
        return self.label(item_id, OUT_OF_SCOPE, actor=actor)

    def discard(self, item_id: int, *, actor: str, reason: str | None = None) -> dict:
        item = self._open_item(item_id)
        self._close(item_id, "discarded", actor, {"reason": reason} if reason else None)
        self.store.record_audit(
            actor, "nlu.discard", "nlu_inbox_item", item_id, {"reason": reason} if reason else None
        )
        return {**item, "status": "discarded"}

    def _open_item(self, item_id: int) -> dict:
        item = self.item(item_id)
        if item["status"] != "open":
            raise ItemClosed(
                f"inbox item {item_id} is already {item['status']}"
                + (f" by {item['decided_by']}" if item["decided_by"] else "")
            )
        return item

    def _close(self, item_id: int, status: str, actor: str, label: Optional[dict]) -> None:
        with Session(self.engine, future=True) as s, s.begin():
            item = s.get(m.InboxItem, item_id, with_for_update=True)
            if item is None:
                raise ItemNotFound(f"no inbox item {item_id}")
            if item.status != "open":
                raise ItemClosed(f"inbox item {item_id} is already {item.status}")
            item.status, item.label = status, label
            item.decided_by, item.decided_at = actor, _utcnow()


def erase_sender(engine_or_url: Engine | str | None, sender_id: str, hash_key: str) -> int:
    """Guest erasure: delete every inbox message of this guest, and items left with none (an
    item whose shown text was theirs takes the text of a remaining message). Returns how many
    messages were deleted. The erasure code (PIPL) calls this with the settings' hash key:
    `erase_sender(engine, sender_id, get_settings().training.hash_key)`."""
    h = sender_hash(sender_id, hash_key)
    with Session(as_engine(engine_or_url), future=True) as s, s.begin():
        items = set(
            s.execute(
                select(m.InboxMessage.item_id).where(m.InboxMessage.sender_hash == h)
            ).scalars()
        )
        gone = s.execute(delete(m.InboxMessage).where(m.InboxMessage.sender_hash == h)).rowcount
        for item_id in items:
            left = (
                s.execute(
                    select(m.InboxMessage)
                    .where(m.InboxMessage.item_id == item_id)
                    .order_by(m.InboxMessage.said_at)
                )
                .scalars()
                .first()
            )
            item = s.get(m.InboxItem, item_id)
            if left is None:
                s.delete(item)
            else:
                item.text = left.text
        return gone

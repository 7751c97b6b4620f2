"""The inbound inbox: store first, answer WeCom 200, process later -- in order, once.

`add()` runs before the callback is acknowledged; its unique dedupe key turns WeCom's retries and
replays into no-ops. Workers `claim()` a sender's oldest unfinished row only; a row another worker
holds (valid lease) blocks that sender's later rows, so one guest's messages are handled in the
order they arrived even across processes. A crashed worker's lease runs out and the row is picked
up again (`pending_senders()` at startup); a row that keeps failing ends `failed` after
`max_attempts` so it cannot wedge the guest's queue forever.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.ops.logs import correlation, correlation_of
from bot.ops.metrics import MESSAGES_IN
from bot.wecom.clock import SYSTEM, Clock
from bot.wecom.db import Database, aware
from bot.wecom.models import InboxMessage, KfCursor, KfQuota
from bot.wecom.protocol import UNFINISHED, InboxStatus, Kind, SurfaceMessage, message_from_payload

logger = logging.getLogger(__name__)

# A claimed row is leased, and the lease renewed while the turn runs (bot.wecom.delivery.pipeline): if the
# process dies, another (or the restarted one) can take the row over once the lease ran out.
# Short, so a restart resumes within seconds rather than minutes.
DEFAULT_LEASE_S = 30
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Inbound:
    """A normalized message from any surface, ready to store."""

    dedupe_key: str
    surface: str
    sender_id: str
    kind: str
    payload: Dict[str, Any]  # the stored form of `message`

    @classmethod
    def of(
        cls, dedupe_key: str, message: SurfaceMessage, kind: Kind, sender: Optional[str] = None
    ) -> "Inbound":
        return cls(
            dedupe_key,
            message.surface.value,
            sender or str(message.sender),
            str(kind),
            message.to_payload(),
        )

    @property
    def message(self) -> SurfaceMessage:
        return message_from_payload(self.surface, self.payload)


@dataclass(frozen=True)
class InboxItem:
    id: int
    dedupe_key: str
    surface: str
    sender_id: str
    kind: str
    payload: Dict[str, Any]
    status: str
    attempts: int

    @property
    def message(self) -> SurfaceMessage:
        """The payload as its surface's typed message."""
        return message_from_payload(self.surface, self.payload)

    @property
    def parsed_kind(self) -> Kind:
        return Kind.parse(self.kind)


def _stored(message: Inbound, row_id: int) -> None:
    """Count and log a newly stored message, under its correlation id (bot/ops/logs.py)."""
    MESSAGES_IN.labels(message.surface).inc()
    with correlation(correlation_of(message.dedupe_key, message.payload)):
        logger.info(
            "WeCom %s %s from %s stored as inbox row %s",
            message.surface,
            message.kind,
            message.sender_id,
            row_id,
        )


def _item(row: InboxMessage) -> InboxItem:
    return InboxItem(
        row.id,
        row.dedupe_key,
        row.surface,
        row.sender_id,
        row.kind,
        dict(row.payload or {}),
        row.status,
        row.attempts,
    )


class Inbox:
    def __init__(
        self,
        db: Optional[Database] = None,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Clock = SYSTEM,
    ) -> None:
        self.db = db or Database()
        self.clock = clock
        self.lease_s = lease_s
        self.max_attempts = max_attempts

    # ---- storing (sync; call through db.run) ----------------------------------------------
    def add_sync(self, message: Inbound) -> Optional[int]:
        """Store one message; None if its dedupe key is already there (a retry or replay)."""
        try:
            with self.db.session() as s:
                if s.execute(
                    select(InboxMessage.id).where(InboxMessage.dedupe_key == message.dedupe_key)
                ).first():
                    return None
                row = InboxMessage(
                    dedupe_key=message.dedupe_key,
                    surface=message.surface,
                    sender_id=message.sender_id,
                    kind=message.kind,
                    payload=message.payload,
                    status=InboxStatus.PENDING.value,
                    attempts=0,
                    received_at=self.clock.now(),
                )
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:  # lost a race with a concurrent retry of the same message
            return None

    def add_kf_page_sync(
        self,
        open_kfid: str,
        messages: Sequence[Inbound],
        next_cursor: Optional[str],
        guest_messages: Iterable[tuple] = (),
    ) -> List[int]:
        """Store one sync_msg page and advance the cursor in the same transaction.

        `guest_messages` are (external_userid, send_time datetime) of messages the guest sent:
        each one reopens that guest's 5-in-48h send budget.
        """
        return [
            row_id
            for _, row_id in self._add_kf_page(open_kfid, messages, next_cursor, guest_messages)
        ]

    def _add_kf_page(
        self,
        open_kfid: str,
        messages: Sequence[Inbound],
        next_cursor: Optional[str],
        guest_messages: Iterable[tuple] = (),
    ) -> List[tuple]:
        """add_kf_page_sync, returning (message, new row id) of each row it stored."""
        with self.db.session() as s:
            keys = [m.dedupe_key for m in messages]
            existing = set()
            if keys:
                existing = set(
                    s.execute(
                        select(InboxMessage.dedupe_key).where(InboxMessage.dedupe_key.in_(keys))
                    ).scalars()
                )
            rows = []
            for message in messages:
                if message.dedupe_key in existing:
                    continue
                existing.add(message.dedupe_key)
                row = InboxMessage(
                    dedupe_key=message.dedupe_key,
                    surface=message.surface,
                    sender_id=message.sender_id,
                    kind=message.kind,
                    payload=message.payload,
                    status=InboxStatus.PENDING.value,
                    attempts=0,
                    received_at=self.clock.now(),
                )
                s.add(row)
                rows.append((message, row))
            for external_userid, sent_at in guest_messages:
                quota = s.get(KfQuota, (open_kfid, external_userid))
                if quota is None:
                    s.add(
                        KfQuota(
                            open_kfid=open_kfid,
                            external_userid=external_userid,
                            last_guest_msg_at=sent_at,
                            sent_count=0,
                        )
                    )
                elif aware(quota.last_guest_msg_at) <= sent_at:
                    quota.last_guest_msg_at, quota.sent_count, quota.exhausted_at = sent_at, 0, None
            cursor = s.get(KfCursor, open_kfid)
            if cursor is None:
                cursor = KfCursor(open_kfid=open_kfid)
                s.add(cursor)
            if next_cursor:
                cursor.cursor = next_cursor
            cursor.updated_at = self.clock.now()
            s.flush()
            stored = [(message, row.id) for message, row in rows]
        return stored

    # ---- cursor / token (kf) ----------------------------------------------------------------
    def kf_cursor_sync(self, open_kfid: str) -> Dict[str, Any]:
        with self.db.session() as s:
            row = s.get(KfCursor, open_kfid)
            if row is None:
                return {"cursor": None, "token": None, "token_received_at": None}
            return {
                "cursor": row.cursor,
                "token": row.callback_token,
                "token_received_at": aware(row.token_received_at),
            }

    def save_kf_token_sync(self, open_kfid: str, token: Optional[str]) -> None:
        with self.db.session() as s:
            row = s.get(KfCursor, open_kfid)
            if row is None:
                row = KfCursor(open_kfid=open_kfid)
                s.add(row)
            row.callback_token = token
            row.token_received_at = self.clock.now()
            row.updated_at = self.clock.now()

    def known_kfids_sync(self) -> List[str]:
        with self.db.session() as s:
            return list(s.execute(select(KfCursor.open_kfid)).scalars())

    # ---- processing -------------------------------------------------------------------------
    def claim_sync(self, sender_id: str) -> Optional[InboxItem]:
        """Lease the sender's oldest unfinished row, or None (nothing to do, or held elsewhere)."""
        now = self.clock.now()
        with self.db.session() as s:
            row = s.execute(
                select(InboxMessage)
                .where(InboxMessage.sender_id == sender_id, InboxMessage.status.in_(UNFINISHED))
                .order_by(InboxMessage.id)
                .limit(1)
            ).scalar_one_or_none()
            if row is None:
                return None
            lease = aware(row.lease_until)
            if row.status == InboxStatus.PROCESSING.value and lease is not None and lease > now:
                return None  # someone is on it; later rows wait for it (ordering)
            old_status = row.status
            result = s.execute(
                update(InboxMessage)
                .where(
                    InboxMessage.id == row.id,
                    InboxMessage.status == old_status,
                    InboxMessage.attempts == row.attempts,
                )  # optimistic: one claimer wins
                .values(
                    status=InboxStatus.PROCESSING.value,
                    attempts=InboxMessage.attempts + 1,
                    lease_until=now + dt.timedelta(seconds=self.lease_s),
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                return None
            s.flush()
            s.refresh(row)
            return _item(row)

    def finish_sync(
        self, item_id: int, status: str = InboxStatus.DONE.value, error: Optional[str] = None
    ) -> None:
        with self.db.session() as s:
            s.execute(
                update(InboxMessage)
                .where(InboxMessage.id == item_id)
                .values(status=status, processed_at=self.clock.now(), lease_until=None, error=error)
                .execution_options(synchronize_session=False)
            )

    def renew_sync(self, item_id: int) -> bool:
        """Extend the lease of a row still being processed (heartbeat); False if it was lost."""
        with self.db.session() as s:
            result = s.execute(
                update(InboxMessage)
                .where(
                    InboxMessage.id == item_id, InboxMessage.status == InboxStatus.PROCESSING.value
                )
                .values(lease_until=self.clock.now() + dt.timedelta(seconds=self.lease_s))
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    def release_sync(self, item_id: int, error: str) -> str:
        """Processing failed: back to pending, or `failed` once attempts are used up."""
        with self.db.session() as s:
            row = s.get(InboxMessage, item_id)
            if row is None:
                return "missing"
            failed = row.attempts >= self.max_attempts
            row.status = (InboxStatus.FAILED if failed else InboxStatus.PENDING).value
            row.lease_until = None
            row.error = (error or "")[:2000]
            if failed:
                row.processed_at = self.clock.now()
            return row.status

    def pending_senders_sync(self) -> List[str]:
        now = self.clock.now()
        with self.db.session() as s:
            rows = s.execute(
                select(InboxMessage.sender_id, InboxMessage.id)
                .where(
                    or_(
                        InboxMessage.status == InboxStatus.PENDING.value,
                        and_(
                            InboxMessage.status == InboxStatus.PROCESSING.value,
                            or_(InboxMessage.lease_until.is_(None), InboxMessage.lease_until < now),
                        ),
                    )
                )
                .order_by(InboxMessage.id)
            ).all()
        seen: Dict[str, None] = {}
        for sender_id, _ in rows:
            seen.setdefault(sender_id, None)
        return list(seen)

    def recall_sync(self, dedupe_key: str) -> bool:
        """The guest recalled a message: skip it if it has not been handled yet."""
        with self.db.session() as s:
            result = s.execute(
                update(InboxMessage)
                .where(
                    InboxMessage.dedupe_key == dedupe_key,
                    InboxMessage.status == InboxStatus.PENDING.value,
                )
                .values(status=InboxStatus.RECALLED.value, processed_at=self.clock.now())
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    def get_sync(self, item_id: int) -> Optional[InboxItem]:
        with self.db.session() as s:
            row = s.get(InboxMessage, item_id)
            return _item(row) if row else None

    def all_sync(self, sender_id: Optional[str] = None) -> List[InboxItem]:
        with self.db.session() as s:
            stmt = select(InboxMessage).order_by(InboxMessage.id)
            if sender_id:
                stmt = stmt.where(InboxMessage.sender_id == sender_id)
            return [_item(r) for r in s.execute(stmt).scalars()]

    # ---- async facades ----------------------------------------------------------------------
    async def add(self, message: Inbound) -> Optional[int]:
        new_id = await self.db.run(self.add_sync, message)
        if new_id is not None:
            _stored(message, new_id)
        return new_id

    async def add_kf_page(self, open_kfid, messages, next_cursor, guest_messages=()) -> List[int]:
        stored = await self.db.run(
            self._add_kf_page, open_kfid, messages, next_cursor, list(guest_messages)
        )
        for message, row_id in stored:
            _stored(message, row_id)
        return [row_id for _, row_id in stored]

    async def kf_cursor(self, open_kfid: str) -> Dict[str, Any]:
        return await self.db.run(self.kf_cursor_sync, open_kfid)

    async def save_kf_token(self, open_kfid: str, token: Optional[str]) -> None:
        await self.db.run(self.save_kf_token_sync, open_kfid, token)

    async def known_kfids(self) -> List[str]:
        return await self.db.run(self.known_kfids_sync)

    async def claim(self, sender_id: str) -> Optional[InboxItem]:
        return await self.db.run(self.claim_sync, sender_id)

    async def finish(
        self, item_id: int, status: str = InboxStatus.DONE.value, error: Optional[str] = None
    ) -> None:
        await self.db.run(self.finish_sync, item_id, status, error)

    async def renew(self, item_id: int) -> bool:
        return await self.db.run(self.renew_sync, item_id)

    async def release(self, item_id: int, error: str) -> str:
        return await self.db.run(self.release_sync, item_id, error)

    async def pending_senders(self) -> List[str]:
        return await self.db.run(self.pending_senders_sync)

    async def recall(self, dedupe_key: str) -> bool:
        return await self.db.run(self.recall_sync, dedupe_key)

    async def get(self, item_id: int) -> Optional[InboxItem]:
        return await self.db.run(self.get_sync, item_id)

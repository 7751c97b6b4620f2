"""The outbound send log: every send is recorded, a failed one waits here for its retry, and one
that cannot be delivered ends `dead` -- never lost quietly.

A send may carry a dedupe key (e.g. `reply:<inbox id>:<n>`); a second send with the same key is
refused before it reaches WeCom, which is what keeps a message reprocessed after a crash from
being answered twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.wecom.clock import SYSTEM, Clock
from bot.wecom.db import Database
from bot.wecom.models import OutboxMessage
from bot.wecom.protocol import OutboxStatus

SENDING, RETRY, DEAD = OutboxStatus.SENDING.value, OutboxStatus.RETRY.value, OutboxStatus.DEAD.value

logger = logging.getLogger(__name__)

# A 'sending' row this old belongs to a process that died mid-send: retry it. A live send gives up
# well before (3 tries of 10 s at most). A send that did reach WeCom before the crash is not
# delivered again where WeCom can tell: kf sends carry a msgid WeCom refuses twice, pages carry
# message/send's duplicate check (bot.paging.channels). Other app texts and robot posts have no
# such handle: they are at-least-once.
STALE_SENDING_S = 120


@dataclass(frozen=True)
class OutboxItem:
    id: int
    app: str
    path: str
    body: Dict[str, Any]
    recipient: Optional[str]
    dedupe_key: Optional[str]
    status: str
    attempts: int
    errcode: Optional[int]
    errmsg: Optional[str]


def _item(row: OutboxMessage) -> OutboxItem:
    return OutboxItem(
        row.id,
        row.app,
        row.path,
        dict(row.body or {}),
        row.recipient,
        row.dedupe_key,
        row.status,
        row.attempts,
        row.errcode,
        row.errmsg,
    )


class Outbox:
    def __init__(
        self,
        db: Optional[Database] = None,
        *,
        max_attempts: int = 5,
        stale_sending_s: float = STALE_SENDING_S,
        clock: Clock = SYSTEM,
    ) -> None:
        self.db = db or Database()
        self.clock = clock
        self.max_attempts = max_attempts
        self.stale_sending_s = stale_sending_s

    def begin_sync(
        self,
        app: str,
        path: str,
        body: Dict[str, Any],
        recipient: Optional[str],
        dedupe_key: Optional[str],
        status: str = SENDING,
    ) -> Optional[int]:
        """Record a send about to happen; None when `dedupe_key` was already used -- unless that
        send ended `dead`: asked again (a paging step retried after its dead send), it gets a
        fresh set of attempts instead of reading as already delivered."""
        try:
            with self.db.session() as s:
                now = self.clock.now()
                if dedupe_key:
                    found = s.execute(
                        select(OutboxMessage.id, OutboxMessage.status).where(
                            OutboxMessage.dedupe_key == dedupe_key
                        )
                    ).first()
                    if found is not None:
                        if found.status != DEAD or status == DEAD:
                            return None
                        # only one of two callers reviving it at once gets it (status test)
                        revived = s.execute(
                            update(OutboxMessage)
                            .where(OutboxMessage.id == found.id, OutboxMessage.status == DEAD)
                            .values(
                                body=body,
                                status=status,
                                attempts=0,
                                errcode=None,
                                errmsg=None,
                                next_attempt_at=None,
                                updated_at=now,
                            )
                        ).rowcount
                        return found.id if revived else None
                row = OutboxMessage(
                    app=app,
                    path=path,
                    body=body,
                    recipient=recipient,
                    dedupe_key=dedupe_key,
                    status=status,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:
            return None

    def mark_sync(
        self,
        item_id: int,
        status: str,
        *,
        errcode: Optional[int] = None,
        errmsg: Optional[str] = None,
        retry_in_s: Optional[float] = None,
        attempted: bool = True,
    ) -> str:
        with self.db.session() as s:
            row = s.get(OutboxMessage, item_id)
            if row is None:
                return "missing"
            if attempted:
                row.attempts += 1
            if status == RETRY and row.attempts >= self.max_attempts:
                status = DEAD
            row.status = status
            row.updated_at = self.clock.now()
            row.errcode = errcode
            row.errmsg = (errmsg or None) and errmsg[:2000]
            row.next_attempt_at = (
                (self.clock.now() + dt.timedelta(seconds=retry_in_s or 0))
                if status == RETRY
                else None
            )
            if status == DEAD:
                logger.error(
                    "WeCom send %s to %s is dead after %s attempts: %s %s",
                    row.path,
                    row.recipient,
                    row.attempts,
                    errcode,
                    errmsg,
                )
            return status

    def _due(self, now: dt.datetime):
        """What makes a row due: a retry whose time has come, or a send left in flight so long
        that the process sending it must have died."""
        stale = now - dt.timedelta(seconds=self.stale_sending_s)
        return or_(
            (OutboxMessage.status == RETRY) & (OutboxMessage.next_attempt_at <= now),
            (OutboxMessage.status == SENDING) & (OutboxMessage.updated_at < stale),
        )

    def due_sync(self, limit: int = 50) -> List[OutboxItem]:
        with self.db.session() as s:
            rows = (
                s.execute(
                    select(OutboxMessage)
                    .where(self._due(self.clock.now()))
                    .order_by(OutboxMessage.id)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            return [_item(r) for r in rows]

    def claim_retry_sync(self, item_id: int) -> bool:
        """Take a due row for one retry attempt (one process wins). The row must still be due
        when claimed: every Rasa server and the worker sweep, each working through a list read
        earlier, and a row another sweeper has just claimed reads `sending` and fresh, so it is
        not sent a second time while that sweeper's send is under way."""
        now = self.clock.now()
        with self.db.session() as s:
            result = s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == item_id, self._due(now))
                .values(status=SENDING, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    def list_sync(
        self, status: Optional[str] = None, recipient: Optional[str] = None
    ) -> List[OutboxItem]:
        with self.db.session() as s:
            stmt = select(OutboxMessage).order_by(OutboxMessage.id)
            if status:
                stmt = stmt.where(OutboxMessage.status == status)
            if recipient:
                stmt = stmt.where(OutboxMessage.recipient == recipient)
            return [_item(r) for r in s.execute(stmt).scalars()]

    def requeue_sync(self, ids: Optional[List[int]] = None) -> Dict[int, str]:
        """Give dead sends (the given ids, or all with None) a fresh set of attempts, due now.
        Returns id -> "requeued", or why not ("not dead", "missing", "not resendable"). The
        status change is conditional on `dead`, so two operators requeueing at once, or a
        requeue racing the retry loop, cannot make one message go out twice."""
        outcome: Dict[int, str] = {}
        with self.db.session() as s:
            stmt = select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.path)
            stmt = (
                stmt.where(OutboxMessage.id.in_(ids))
                if ids is not None
                else stmt.where(OutboxMessage.status == DEAD)
            )
            found = {row.id: row for row in s.execute(stmt)}
            for item_id in ids if ids is not None else sorted(found):
                row = found.get(item_id)
                if row is None:
                    outcome[item_id] = "missing"
                elif row.status != DEAD:
                    outcome[item_id] = f"not dead ({row.status})"
                elif row.path.startswith("("):  # recorded, never sendable (no channel to use)
                    outcome[item_id] = "not resendable"
                else:
                    done = s.execute(
                        update(OutboxMessage)
                        .where(OutboxMessage.id == item_id, OutboxMessage.status == DEAD)
                        .values(
                            status=RETRY,
                            attempts=0,
                            next_attempt_at=self.clock.now(),
                            updated_at=self.clock.now(),
                        )
                        .execution_options(synchronize_session=False)
                    ).rowcount
                    outcome[item_id] = "requeued" if done == 1 else "not dead (changed meanwhile)"
        requeued = [i for i, o in outcome.items() if o == "requeued"]
        if requeued:
            logger.info("outbox rows %s requeued for another round of attempts", requeued)
        return outcome

    async def begin(self, *args, **kwargs) -> Optional[int]:
        return await self.db.run(self.begin_sync, *args, **kwargs)

    async def mark(self, item_id: int, status: str, **kwargs) -> str:
        return await self.db.run(self.mark_sync, item_id, status, **kwargs)

    async def due(self, limit: int = 50) -> List[OutboxItem]:
        return await self.db.run(self.due_sync, limit)

    async def claim_retry(self, item_id: int) -> bool:
        return await self.db.run(self.claim_retry_sync, item_id)

    async def list(
        self, status: Optional[str] = None, recipient: Optional[str] = None
    ) -> List[OutboxItem]:
        return await self.db.run(self.list_sync, status, recipient)

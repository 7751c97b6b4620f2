"""Telling a guest something once, unasked (a cancelled booking), through WeCom.

`queue_notice(session, guest_id, key, text)` records it in `guest_notices` inside the caller's
transaction; the unique `key` (e.g. `booking:42:cancelled`) is what makes "once" hold when the
same change is imported or pushed again. `deliver_pending(engine, say)` sends pending notices to
the guest's WeCom sender id (their own, or the first linked one) with `say(sender_id, text,
dedupe_key)` (the worker passes its messenger's `guest_text`, which goes through Rasa and the
WeCom output channel, so 微信客服's session and 48-hour rules apply); a guest with no WeCom
identity yet is marked `no_channel` (nothing to send on; the advisor sees it in the profile).
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.crm import models as m
from bot.crm.db import make_session_factory, session_scope
from bot.wecom.sender import is_wecom_sender

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def queue_notice(s: Session, guest_id: int, key: str, text: str) -> bool:
    """Record a notice unless one with `key` exists; True when queued now."""
    if s.execute(select(m.GuestNotice.id).where(m.GuestNotice.key == key)).first():
        return False
    try:
        with s.begin_nested():
            s.add(
                m.GuestNotice(guest_id=guest_id, key=key, text=text, status="pending", attempts=0)
            )
    except IntegrityError:  # queued concurrently by another process: that one stands
        return False
    return True


def wecom_sender(s: Session, guest_id: int) -> str | None:
    """The sender id a message to this guest goes to: their own if it is a WeCom one, else the
    first WeCom sender id linked to the profile."""
    own = s.execute(select(m.Guest.sender_id).where(m.Guest.id == guest_id)).scalar_one_or_none()
    if own and is_wecom_sender(own):
        return own
    linked = (
        s.execute(
            select(m.GuestIdentity.value)
            .where(m.GuestIdentity.guest_id == guest_id, m.GuestIdentity.kind == "sender")
            .order_by(m.GuestIdentity.id)
        )
        .scalars()
        .all()
    )
    return next((v for v in linked if is_wecom_sender(v)), None)


async def deliver_pending(
    engine: Engine, say: Callable[..., Awaitable[None]], *, limit: int = 50, run=None
) -> int:
    """Send pending notices; returns how many were sent. `run(fn)` runs blocking database work
    off the event loop (default: asyncio.to_thread)."""
    import asyncio

    run = run or asyncio.to_thread
    factory = make_session_factory(engine)

    def pending() -> list[tuple[int, str | None, str]]:
        with session_scope(factory) as s:
            rows = (
                s.execute(
                    select(m.GuestNotice)
                    .where(m.GuestNotice.status == "pending")
                    .order_by(m.GuestNotice.id)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            return [(n.id, wecom_sender(s, n.guest_id), n.text) for n in rows]

    def mark(notice_id: int, status: str | None, error: str | None = None) -> None:
        with session_scope(factory) as s:
            row = s.get(m.GuestNotice, notice_id)
            if row is None or row.status != "pending":
                return
            row.attempts += 1
            if status is None:  # a failed try: give up after MAX_ATTEMPTS
                status = "failed" if row.attempts >= MAX_ATTEMPTS else "pending"
            row.status = status
            row.error = error[:255] if error else None
            if status == "sent":
                row.sent_at = m.utcnow()

    sent = 0
    for notice_id, sender_id, text in await run(pending):
        if sender_id is None:
            await run(mark, notice_id, "no_channel")
            continue
        try:
            await say(sender_id, text, dedupe_key=f"notice:{notice_id}")
        except Exception as exc:  # the messenger's SendFailed, a Rasa outage: try again later
            log.warning("guest notice %s to %s not sent: %s", notice_id, sender_id, exc)
            await run(mark, notice_id, None, str(exc))
            continue
        await run(mark, notice_id, "sent")
        sent += 1
    return sent

"""Keeping guests' words no longer than needed (PIPL Art. 19), run by the worker.

- WeCom inbox rows (the raw inbound callbacks, with what the guest wrote) that were handled and
  are older than RETENTION_MESSAGES_DAYS are deleted; rows still pending or being processed stay.
- WeCom outbox rows (what we sent, and to whom) that are finished (sent, dead, suppressed, ...)
  and older than the same period are deleted.
- Rasa's tracker events older than RETENTION_TRACKER_DAYS are deleted (bot.tracker_events), and
  so are their copies the event consumer keeps for the reports (bot.events, same period).
The CRM profile itself (tags, orders, tickets) is kept while the guest is a guest; erasure
(bot.erasure) is how it goes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Optional

from sqlalchemy import delete

from bot.settings import Settings, get_settings

log = logging.getLogger(__name__)

INBOX_OPEN = ("pending", "processing")
OUTBOX_OPEN = ("sending", "retry", "deferred")


def run_retention(
    crm, tracker=None, *, now: Optional[dt.datetime] = None, settings: Optional[Settings] = None
) -> dict:
    """Delete what is past its keeping period; returns the counts per store."""
    from bot.wecom import models as wm

    settings = settings or get_settings()
    now = now or dt.datetime.now(dt.timezone.utc)
    messages_cutoff = now - dt.timedelta(days=settings.retention_messages_days)
    counts = {}
    with crm.engine.begin() as conn:
        counts["wecom_inbox"] = (
            conn.execute(
                delete(wm.InboxMessage.__table__).where(
                    wm.InboxMessage.received_at < messages_cutoff,
                    wm.InboxMessage.status.notin_(INBOX_OPEN),
                )
            ).rowcount
            or 0
        )
        counts["wecom_outbox"] = (
            conn.execute(
                delete(wm.OutboxMessage.__table__).where(
                    wm.OutboxMessage.created_at < messages_cutoff,
                    wm.OutboxMessage.status.notin_(OUTBOX_OPEN),
                )
            ).rowcount
            or 0
        )
    from bot.events.store import EventStore

    counts["conversation_events"] = EventStore(crm.engine).delete_older_than(
        now - dt.timedelta(days=settings.retention_tracker_days)
    )
    if tracker is not None:
        counts["tracker_events"] = tracker.delete_older_than(
            now - dt.timedelta(days=settings.retention_tracker_days)
        )
    if any(counts.values()):
        log.info("retention: dropped %s", counts)
    return counts

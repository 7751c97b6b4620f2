"""The Prometheus metrics every process exports on `/metrics` (docs/OPERATIONS.md).

The counters and histograms are declared here, at import, in prometheus_client's default
registry: that is the library's idiom (a metric is a process-wide name, like a logger), and
declaring one does no I/O. Queue depths are different: they are read from the database when
Prometheus scrapes, by a `QueueDepths` that each process builds in its entry point with its own
engine and hands to `Exposition`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Dict, Iterable, Optional

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text

logger = logging.getLogger(__name__)

# Answer times (callbacks are answered in ms; turns and actions in tenths of seconds to seconds).
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 120.0)

MESSAGES_IN = Counter(
    "concierge_wecom_messages_in", "WeCom messages and events stored in the inbox", ["surface"]
)
MESSAGES_OUT = Counter(
    "concierge_wecom_messages_out",
    "WeCom sends by outcome (sent, retry, dead, deferred, ...)",
    ["app", "status"],
)
CALLBACK_SECONDS = Histogram(
    "concierge_wecom_callback_seconds",
    "Time to answer a WeCom callback (verify, decrypt, store)",
    ["surface", "status"],
    buckets=_FAST,
)
TURN_SECONDS = Histogram(
    "concierge_turn_seconds",
    "One guest message through Rasa, from the inbox row to the reply sent",
    ["surface", "outcome"],
    buckets=_SLOW,
)
ACTION_SECONDS = Histogram(
    "concierge_action_seconds",
    "One custom action on the action server",
    ["action", "status"],
    buckets=_SLOW,
)
WECOM_ERRCODES = Counter(
    "concierge_wecom_errcodes", "Non-zero errcodes WeCom answered", ["path", "errcode"]
)
TOKEN_REFRESHES = Counter(
    "concierge_wecom_token_refreshes",
    "WeCom access tokens fetched (expired, or refused by WeCom)",
    ["app"],
)

# (metric name, help, SQL). Each counts rows still to be worked off.
_DEPTH_QUERIES = (
    (
        "concierge_inbox_pending",
        "Inbox rows not yet handled (pending or processing)",
        "SELECT COUNT(*) FROM wecom_inbox WHERE status IN ('pending', 'processing')",
    ),
    (
        "concierge_outbox_retrying",
        "Outbox sends waiting for a retry",
        "SELECT COUNT(*) FROM wecom_outbox WHERE status = 'retry'",
    ),
    (
        "concierge_outbox_dead",
        "Outbox sends that gave up (concierge outbox dead)",
        "SELECT COUNT(*) FROM wecom_outbox WHERE status = 'dead'",
    ),
    (
        "concierge_sla_steps_due",
        "SLA steps (pages, escalations) due and not yet fired",
        "SELECT COUNT(*) FROM sla_steps WHERE status = 'pending' AND due_at <= :now",
    ),
)


class QueueDepths:
    """A collector that counts the queues in the database at scrape time. `collect()` blocks on
    the database: `Exposition.render()` calls it off the event loop."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def read(self) -> Dict[str, Optional[int]]:
        depths: Dict[str, Optional[int]] = {}
        now = dt.datetime.now(dt.timezone.utc)
        try:
            with self.engine.connect() as conn:
                for name, _, sql in _DEPTH_QUERIES:
                    try:
                        depths[name] = int(conn.execute(text(sql), {"now": now}).scalar() or 0)
                    except Exception as exc:  # a table this database lacks: that depth only
                        logger.warning("queue depth %s unreadable: %s", name, exc)
                        conn.rollback()
                        depths[name] = None
        except Exception as exc:  # the database is down: say so, keep serving the rest
            logger.warning("queue depths unreadable: %s", exc)
            return {name: None for name, _, _ in _DEPTH_QUERIES}
        return depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depths = self.read()
        for name, help_text, _ in _DEPTH_QUERIES:
            if depths.get(name) is not None:
                yield GaugeMetricFamily(name, help_text, value=depths[name])
        yield GaugeMetricFamily(
            "concierge_queue_depths_up",
            "1 when the queue depths could be read",
            value=0 if any(v is None for v in depths.values()) else 1,
        )


class Exposition:
    """What a process's `/metrics` answers: the process-wide metrics, plus its queue depths."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depths: Optional[QueueDepths] = None) -> None:
        self.extra = CollectorRegistry(auto_describe=False)
        if queue_depths is not None:
            self.extra.register(queue_depths)

    def render_sync(self) -> bytes:
        return generate_latest(REGISTRY) + generate_latest(self.extra)

    async def render(self) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(None, self.render_sync)

"""Two workers, each with its own engine and event loop (as two processes would be), ticking at
the same moments against the real PostgreSQL: every step is sent exactly once.
(Skipped without PostgreSQL locally; a failure in CI, see tests/conftest.require_service.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import Counter

import pytest

from bot.crm.db import upgrade
from bot.crm.store import CRMStore
from bot.paging.context import GuestContext
from bot.paging.pager import RecordingMessenger
from bot.paging.store import PagingStore
from bot.paging.worker import PagingWorker
from tests.paging.conftest import FakeClock, complaint, new_guest

pytestmark = pytest.mark.postgres

TICKETS = 40
# page, repage, escalate (supervisor + guest), escalate_resolve (supervisor + guest)
MESSAGES_PER_TICKET = 6


def test_two_workers_send_each_page_once(pg_database_url, policy):
    upgrade(pg_database_url)
    crm = CRMStore(pg_database_url)
    sender = new_guest(crm)
    tickets = [complaint(crm, sender) for _ in range(TICKETS)]
    t0 = max(t.created_at for t in tickets)
    clock = FakeClock(t0)
    messenger = RecordingMessenger()  # shared: list.append is atomic
    moments = [t0 + dt.timedelta(seconds=s) for s in (0, 0.2, 5, 5.1, 10, 10.5, 60, 61)]
    barrier = threading.Barrier(2, timeout=60)
    errors: list = []
    fired = Counter()

    def run(worker_id: str) -> None:
        store = PagingStore(pg_database_url)
        worker = PagingWorker(
            store,
            policy,
            messenger,
            context=GuestContext(CRMStore(store.engine)),
            clock=clock,
            worker_id=worker_id,
            batch=7,
        )
        loop = asyncio.new_event_loop()
        try:
            for moment in moments:
                barrier.wait()
                if worker_id == "a":
                    clock.set(moment)
                barrier.wait()
                report = loop.run_until_complete(worker.tick())
                fired[worker_id] += report.fired
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()
        finally:
            loop.close()
            store.close()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    print("fired per worker:", dict(fired))

    keys = Counter(m["dedupe_key"] for m in messenger.sent)
    twice = {k: n for k, n in keys.items() if n > 1}
    assert twice == {}
    assert len(messenger.sent) == TICKETS * MESSAGES_PER_TICKET
    paging = PagingStore(pg_database_url)
    try:
        steps = paging.steps()
        assert len(steps) == TICKETS * 4
        assert {s.status for s in steps} == {"sent"}
        assert sum(fired.values()) == len(steps)
        assert len(paging.clocks()) == TICKETS  # one clock per ticket, whoever discovered it
    finally:
        paging.close()
        crm.close()

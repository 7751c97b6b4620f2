"""On the real PostgreSQL: workers racing for the same campaign, the same cap slots and the same
touchpoint. Each worker is a thread with its own event loop and its own engine, like processes."""

from __future__ import annotations

import asyncio
import threading

from bot.crm.db import make_engine, upgrade
from bot.crm.demo import load_demo
from bot.marketing.campaigns import CampaignService
from tests.marketing.conftest import TODAY, Clock, at, policy
from tests.marketing.test_campaigns import MEMBER_DAY, RecordingAPI


def race(n, fn):
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return results


def test_two_workers_send_one_campaign_once(pg_database_url):
    upgrade(pg_database_url)
    load_demo(pg_database_url, today=TODAY)
    clock = Clock(at(0, 10))
    api = RecordingAPI()
    setup = make_engine(pg_database_url)
    CampaignService(setup, policy(), clock=clock).create(MEMBER_DAY, actor="t")
    setup.dispose()

    def worker(i):
        engine = make_engine(pg_database_url)
        try:
            service = CampaignService(engine, policy(), wecom=api, clock=clock)
            return asyncio.run(service.send_due(worker_id=f"w{i}"))
        finally:
            engine.dispose()

    results = race(4, worker)
    sent = [r for rs in results for r in rs if r["sent"]]
    assert len(sent) == 1
    assert sorted(e for c in api.calls for e in c["external_userid"]) == [
        "wm_demo_chen",
        "wm_demo_lin",
        "wm_guest_001",
    ]


def test_two_campaigns_at_once_share_the_cap(pg_database_url):
    upgrade(pg_database_url)
    load_demo(pg_database_url, today=TODAY)
    clock = Clock(at(0, 10))
    api = RecordingAPI()
    setup = make_engine(pg_database_url)
    ids = [
        CampaignService(setup, policy(cap=1), clock=clock).create(MEMBER_DAY, actor="t")
        for _ in range(2)
    ]
    setup.dispose()

    def worker(i):
        engine = make_engine(pg_database_url)
        try:
            service = CampaignService(engine, policy(cap=1), wecom=api, clock=clock)
            return asyncio.run(service.send(ids[i], worker_id=f"w{i}"))
        finally:
            engine.dispose()

    race(2, worker)
    received = sorted(e for c in api.calls for e in c["external_userid"])
    assert received == ["wm_demo_chen", "wm_demo_lin", "wm_guest_001"]  # each once, not twice


def test_two_workers_fire_a_touchpoint_once(pg_database_url):
    from tests.marketing.test_touchpoints import Messenger, build

    upgrade(pg_database_url)
    load_demo(pg_database_url, today=TODAY)
    messenger = Messenger()

    def worker(i):
        engine = make_engine(pg_database_url)
        try:
            return asyncio.run(build(engine, messenger).run(now=at(3, 10)))
        finally:
            engine.dispose()

    race(3, worker)
    assert [m[0] for m in messenger.sent] == ["demo-lin"]

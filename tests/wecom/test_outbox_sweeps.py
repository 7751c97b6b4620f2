"""Several processes sweep the one outbox (each Rasa server every 10 s, the SLA worker every 30 s):
a due row is claimed by one of them, and a row one sweeper is sending is never sent by another
that read the due list just before (issue 18: one page WeCom received twice, one `sent` row)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.crm.db import upgrade
from bot.wecom.clock import ManualClock
from bot.wecom.delivery.outbox import Outbox
from tests.wecom.test_client import fault

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def any_database(request, tmp_path):
    from bot.wecom.db import Database, get_engine

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'outbox.db'}"
    else:
        url = request.getfixturevalue("pg_database_url")
    upgrade(url)
    return Database(get_engine(url))


def _deferred_row(outbox: Outbox, step: int = 1) -> int:
    row = outbox.begin_sync(
        "app",
        "/cgi-bin/message/send",
        {"msgtype": "textcard"},
        "wecom:lisi",
        f"sla:{step}:on_duty:lisi",
    )
    # the row exists and waits for its retry (a deferred page), as each test below starts from
    assert (
        outbox.mark_sync(row, "retry", errmsg="local rate limit", retry_in_s=5, attempted=False)
        == "retry"
    )
    return row


def test_a_row_one_sweeper_claimed_is_not_claimed_by_another_holding_an_older_due_list(
    any_database,
):
    clock = ManualClock()
    outbox = Outbox(any_database, clock=clock)
    row = _deferred_row(outbox)
    clock.advance_sync(5)
    seen_by_b = [i.id for i in outbox.due_sync()]  # sweeper B reads the due rows ...
    assert seen_by_b == [row]
    assert outbox.claim_retry_sync(row) is True  # ... sweeper A claims and is sending it ...
    assert outbox.claim_retry_sync(row) is False  # ... so B, working through its list, may not
    clock.advance_sync(60)
    assert outbox.claim_retry_sync(row) is False  # nor while A's send is still young
    assert outbox.list_sync()[0].status == "sending"


def test_a_stale_send_is_claimed_once(any_database):
    clock = ManualClock()
    outbox = Outbox(any_database, stale_sending_s=120, clock=clock)
    row = outbox.begin_sync(
        "app", "/cgi-bin/message/send", {"msgtype": "textcard"}, "wecom:lisi", "sla:2:on_duty:lisi"
    )
    assert outbox.claim_retry_sync(row) is False  # a live process is sending it
    clock.advance_sync(121)  # ... or it died: stale
    assert outbox.claim_retry_sync(row) is True
    assert outbox.claim_retry_sync(row) is False  # the claim made it fresh again
    clock.advance_sync(121)
    assert outbox.claim_retry_sync(row) is True  # the claimer died too: stale once more


def test_a_row_that_is_not_due_yet_is_not_claimed(any_database):
    clock = ManualClock()
    outbox = Outbox(any_database, clock=clock)
    row = _deferred_row(outbox)
    clock.advance_sync(4)
    assert outbox.claim_retry_sync(row) is False
    clock.advance_sync(1)
    assert outbox.claim_retry_sync(row) is True


@pytest.mark.postgres
def test_concurrent_claims_on_postgres_let_exactly_one_through(pg_database_url):
    from bot.wecom.db import Database, get_engine

    upgrade(pg_database_url)
    clock = ManualClock()
    outbox = Outbox(Database(get_engine(pg_database_url)), clock=clock)
    for step in range(5):
        row = _deferred_row(outbox, step)
        clock.advance_sync(5)
        barrier, results = threading.Barrier(4), []

        def claim() -> None:
            barrier.wait()
            results.append(outbox.claim_retry_sync(row))

        threads = [threading.Thread(target=claim) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False, False, False, True]


async def test_two_processes_sweeping_send_a_deferred_page_once(env):
    """Process A's sweep is sending the row (WeCom slow to answer) while process B works through
    the due list it read before A's claim: WeCom gets the message once."""
    a = env.services()
    b = env.services()  # another process on the same database
    result = await a.app.send_textcard(
        "lisi",
        "【新投诉】#7 林晓·金卡",
        "房间有烟味",
        "http://x/cases/7?sig=s",
        dedupe_key="sla:7:x",
    )
    assert result.ok
    row = a.outbox.list_sync()[0].id
    with a.db.session() as s:  # as if the rate limit had deferred it and it is due now
        from sqlalchemy import update

        from bot.wecom.models import OutboxMessage

        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row)
            .values(status="retry", next_attempt_at=OutboxMessage.created_at)
        )
    before = len(await env.calls("/cgi-bin/message/send"))
    stale_list = await b.outbox.due()  # B read the due rows ...
    assert [i.id for i in stale_list] == [row]
    await fault(env, path="/cgi-bin/message/send", delay_s=0.5, times=1)
    sweep_a = asyncio.create_task(a.retry_due())  # ... A claims it, WeCom takes its time ...
    for _ in range(200):
        if len(await env.calls("/cgi-bin/message/send")) > before:
            break
        await asyncio.sleep(0.01)

    async def b_list(limit: int = 50):
        return stale_list

    b.outbox.due = b_list  # ... and B goes on with the list it read before A's claim
    assert await b.retry_due() == 0
    assert await sweep_a == 1
    sends = (await env.calls("/cgi-bin/message/send"))[before:]
    assert [c.get("errcode") for c in sends] == [0]
    assert a.outbox.list_sync()[0].status == "sent"

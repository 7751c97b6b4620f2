"""The dispatcher: one worker per sender, a hung handler times out, failures reach on_failed."""

from __future__ import annotations

import asyncio

from bot.wecom.delivery.inbox import Inbound, Inbox
from bot.wecom.delivery.pipeline import Dispatcher


def msg(key, sender, text):
    return Inbound(key, "kf", sender, "text", {"text": text})


async def test_hung_handler_times_out_and_the_row_is_retried_later(database):
    inbox = Inbox(database)
    await inbox.add(msg("k1", "kf:a", "slow"))
    calls = []

    async def handle(item):
        calls.append(item.payload["text"])
        if len(calls) == 1:
            await asyncio.sleep(10)
        return "done"

    dispatcher = Dispatcher(inbox, handle, timeout_s=0.2)
    dispatcher.kick("kf:a")
    await dispatcher.wait_idle(5)
    rows = inbox.all_sync()
    assert rows[0].status == "pending"
    with database.session() as s:
        from bot.wecom.models import InboxMessage

        assert "TimeoutError" in s.get(InboxMessage, rows[0].id).error
    await dispatcher.drain()
    await dispatcher.wait_idle(5)
    assert calls == ["slow", "slow"] and inbox.all_sync()[0].status == "done"


async def test_workers_run_senders_in_parallel_each_in_order(database):
    inbox = Inbox(database)
    for i in range(3):
        for sender in ("kf:a", "kf:b", "kf:c"):
            await inbox.add(msg(f"{sender}-{i}", sender, f"{sender}-{i}"))
    seen, running, peak = [], set(), [0]

    async def handle(item):
        assert item.sender_id not in running
        running.add(item.sender_id)
        peak[0] = max(peak[0], len(running))
        await asyncio.sleep(0.05)
        running.discard(item.sender_id)
        seen.append(item.payload["text"])
        return "done"

    dispatcher = Dispatcher(inbox, handle)
    assert await dispatcher.drain() == 3
    await dispatcher.wait_idle(10)
    for sender in ("kf:a", "kf:b", "kf:c"):
        assert [t for t in seen if t.startswith(sender)] == [f"{sender}-{i}" for i in range(3)]
    assert peak[0] > 1


async def test_stop_releases_what_is_in_flight(database):
    inbox = Inbox(database)
    await inbox.add(msg("k1", "kf:a", "x"))

    async def handle(item):
        await asyncio.sleep(10)
        return "done"

    dispatcher = Dispatcher(inbox, handle)
    dispatcher.kick("kf:a")
    await asyncio.sleep(0.2)
    await dispatcher.stop(grace_s=0.1)
    row = inbox.all_sync()[0]
    assert row.status == "pending"  # the next process picks it up
    dispatcher.kick("kf:a")  # stopped: no new work
    assert not dispatcher._workers


async def test_a_long_turn_keeps_its_lease_and_a_dead_workers_row_is_taken_over_after_it(database):
    from bot.wecom.clock import ManualClock

    clock = ManualClock()
    inbox = Inbox(database, lease_s=30, clock=clock)
    await inbox.add(msg("k1", "kf:a", "long turn"))
    taken_over = []

    async def handle(item):
        await clock.advance(100)  # over three leases long: the heartbeat renews it
        taken_over.append(await inbox.claim("kf:a"))
        return "done"

    dispatcher = Dispatcher(inbox, handle, clock=clock)
    dispatcher.kick("kf:a")
    await dispatcher.wait_idle(5)
    assert taken_over == [None] and inbox.all_sync()[0].status == "done"

    # A process that claimed a row and died renews nothing: the row is free once the lease ran out.
    await inbox.add(msg("k2", "kf:a", "claimed by a dead process"))
    dead = await inbox.claim("kf:a")
    clock.advance_sync(29)
    assert await inbox.claim("kf:a") is None and await inbox.pending_senders() == []
    clock.advance_sync(2)
    assert await inbox.pending_senders() == ["kf:a"]
    again = await inbox.claim("kf:a")
    assert again.id == dead.id and again.attempts == 2


async def test_a_guest_who_keeps_writing_does_not_keep_the_slot_from_one_who_waits(database):
    """One slot, two guests: A writes again every time A is answered (a chatty guest in a busy
    hour); B's one message must be answered after A's current one, not after all of A's."""
    inbox = Inbox(database)
    await inbox.add(msg("a-0", "kf:a", "a-0"))
    order = []
    dispatcher = None

    async def handle(item):
        order.append(item.payload["text"])
        n = sum(1 for t in order if t.startswith("a-"))
        if item.sender_id == "kf:a" and n < 5:
            # A's next message arrives while A's turn is still running
            await inbox.add(msg(f"a-{n}", "kf:a", f"a-{n}"))
            dispatcher.kick("kf:a")
        await asyncio.sleep(0.01)
        return "done"

    dispatcher = Dispatcher(inbox, handle, max_concurrency=1)
    dispatcher.kick("kf:a")
    await asyncio.sleep(0)  # A's worker holds the slot
    await inbox.add(msg("b-0", "kf:b", "b-0"))
    dispatcher.kick("kf:b")
    await dispatcher.wait_idle(10)
    assert sorted(order) == ["a-0", "a-1", "a-2", "a-3", "a-4", "b-0"]
    assert order.index("b-0") <= 2  # served after at most one more of A's, not after all five

"""The inbox: store once, claim in order, survive crashes, give up after max attempts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from bot.wecom.delivery.inbox import Inbound, Inbox
from bot.wecom.models import InboxMessage


def msg(key, sender="kf:a", text="hi"):
    return Inbound(key, "kf", sender, "text", {"text": text})


async def test_duplicates_are_stored_once(database):
    inbox = Inbox(database)
    assert await inbox.add(msg("k1")) is not None
    assert await inbox.add(msg("k1")) is None
    assert await inbox.add(msg("k1")) is None
    assert len(inbox.all_sync()) == 1


async def test_claims_in_order_and_blocks_later_rows_while_one_is_held(database):
    inbox = Inbox(database)
    for i in range(3):
        await inbox.add(msg(f"k{i}", text=str(i)))
    first = await inbox.claim("kf:a")
    assert first.payload["text"] == "0"
    assert await inbox.claim("kf:a") is None  # held: the next must wait (ordering)
    await inbox.finish(first.id)
    second = await inbox.claim("kf:a")
    assert second.payload["text"] == "1"


async def test_expired_lease_is_taken_over(database):
    inbox = Inbox(database)
    await inbox.add(msg("k1"))
    item = await inbox.claim("kf:a")
    with database.session() as s:  # the worker died; its lease ran out
        s.execute(
            update(InboxMessage)
            .where(InboxMessage.id == item.id)
            .values(lease_until=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
        )
    assert await inbox.pending_senders() == ["kf:a"]
    again = await inbox.claim("kf:a")
    assert again.id == item.id and again.attempts == 2


async def test_failed_after_max_attempts_unblocks_the_sender(database):
    inbox = Inbox(database, max_attempts=2)
    await inbox.add(msg("k1", text="bad"))
    await inbox.add(msg("k2", text="good"))
    item = await inbox.claim("kf:a")
    assert await inbox.release(item.id, "boom") == "pending"
    item = await inbox.claim("kf:a")
    assert await inbox.release(item.id, "boom") == "failed"
    nxt = await inbox.claim("kf:a")
    assert nxt.payload["text"] == "good"


async def test_kf_page_and_cursor_commit_together(database):
    inbox = Inbox(database)
    now = dt.datetime.now(dt.timezone.utc)
    ids = await inbox.add_kf_page("wk1", [msg("a"), msg("b"), msg("a")], "c2", [("ext", now)])
    assert len(ids) == 2
    assert (await inbox.kf_cursor("wk1"))["cursor"] == "c2"
    ids = await inbox.add_kf_page("wk1", [msg("b"), msg("c")], "c3")
    assert len(ids) == 1 and (await inbox.kf_cursor("wk1"))["cursor"] == "c3"
    assert await inbox.known_kfids() == ["wk1"]


async def test_recall_skips_only_pending_rows(database):
    inbox = Inbox(database)
    await inbox.add(msg("k1"))
    assert await inbox.recall("k1") is True
    assert inbox.all_sync()[0].status == "recalled"
    assert await inbox.claim("kf:a") is None

"""A page (the SLA worker's textcard, through bot.paging.channels.WeComMessenger) whose send may
have reached WeCom although we never learnt it -- the worker killed before it recorded 'sent',
WeCom answering after our timeout -- is re-sent by the outbox, and the advisor still gets it once:
pages carry WeCom's duplicate check (issue 18). Legitimate pages stay distinct: each names its
step, so two steps' cards that would otherwise read the same both arrive."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import update

from bot.paging.channels import WeComMessenger
from bot.paging.links import DEV_SECRET, CaseLinks
from bot.paging.pager import CardFacts, GuestCard, page_card
from bot.paging.policy import load_policy
from bot.wecom.models import OutboxMessage
from tests.paging.conftest import FAST_POLICY
from tests.wecom.test_client import fault

ADVISOR = "advisor_li"


def cards_for(env, userid=ADVISOR):
    return [
        f for f in env.state.feed if f["channel"] == "app" and f["key"] == userid and "card" in f
    ]


async def page(messenger, card, key):
    await messenger.app_textcard(
        ADVISOR, card["title"], card["description"], card["url"], card["btntxt"], dedupe_key=key
    )


def card_for_step(step_id, now, links=None):
    policy = load_policy(FAST_POLICY)
    facts = CardFacts(
        case_id=12,
        label="投诉",
        step="repage",
        summary="房间有很重的烟味",
        ack_due_at=now + dt.timedelta(minutes=10),
        resolve_due_at=None,
        acknowledged=False,
        holder_name="李顾问",
        escalation=False,
        step_id=step_id,
    )
    guest = GuestCard("kf:wm1", "林晓", "金卡")
    return page_card(policy, facts, guest, now, viewer=ADVISOR, links=links)


def make_due(s) -> None:
    with s.db.session() as session:
        session.execute(update(OutboxMessage).values(next_attempt_at=OutboxMessage.created_at))


async def test_a_page_delivered_just_before_the_worker_died_reaches_the_advisor_once(env):
    s = env.services()
    messenger = WeComMessenger(services=s)
    await page(messenger, card_for_step(41, dt.datetime.now(dt.timezone.utc)), "sla:41:on_duty:x")
    [row] = s.outbox.list_sync()
    assert row.status == "sent" and row.body["enable_duplicate_check"] == 1
    # The worker was killed after WeCom took the card, before it recorded that: 'sending'.
    s.outbox.mark_sync(row.id, "sending", attempted=False)
    s.outbox.stale_sending_s = 0
    assert await s.retry_due() == 1  # the stale send is retried, as it must be ...
    assert [r.status for r in s.outbox.list_sync()] == ["sent"]
    sends = await env.calls("/cgi-bin/message/send")
    assert [c["body"] for c in sends] == [row.body, row.body]  # ... byte for byte the same
    assert len(cards_for(env)) == 1  # ... and WeCom delivers it once


async def test_a_page_wecom_took_after_our_timeout_reaches_the_advisor_once(env):
    s = env.services(timeout_s=0.3, retries=1)
    messenger = WeComMessenger(services=s)
    await fault(env, path="/cgi-bin/message/send", delay_s=0.6, times=1)
    await page(messenger, card_for_step(42, dt.datetime.now(dt.timezone.utc)), "sla:42:on_duty:x")
    [row] = s.outbox.list_sync()
    assert row.status == "retry" and "timeout" in row.errmsg  # we never learnt it arrived
    for _ in range(100):  # WeCom finishes the slow call in its own time
        if cards_for(env):
            break
        await asyncio.sleep(0.02)
    assert len(cards_for(env)) == 1
    make_due(s)
    assert await s.retry_due() == 1
    assert [r.status for r in s.outbox.list_sync()] == ["sent"]
    assert len(cards_for(env)) == 1


async def test_two_steps_whose_cards_would_read_the_same_both_reach_the_advisor(env):
    s = env.services()
    messenger = WeComMessenger(services=s)
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    links = CaseLinks(DEV_SECRET, 3600, clock=lambda: now.timestamp())  # one signing second
    first, second = card_for_step(51, now, links), card_for_step(52, now, links)
    assert {k: v for k, v in first.items() if k != "url"} == {
        k: v for k, v in second.items() if k != "url"
    }  # same minute, same facts: only the step tells them apart
    await page(messenger, first, "sla:51:on_duty:x")
    await page(messenger, second, "sla:52:on_duty:x")
    assert len(cards_for(env)) == 2
    assert "step=51" in first["url"] and "step=52" in second["url"]
    assert "?sig=" in first["url"]  # the signed link still opens the case page


async def test_a_step_retried_after_its_page_went_dead_pages_again_instead_of_counting_it_sent(
    env,
):
    """The step's retry uses the same dedupe key; a dead send under it must not read as
    delivered (the supervisor would never be paged)."""
    from bot.paging.pager import SendFailed

    s = env.services()
    messenger = WeComMessenger(services=s)
    card = card_for_step(44, dt.datetime.now(dt.timezone.utc))
    await fault(env, path="/cgi-bin/message/send", errcode=40003, times=1)  # refused for good
    try:
        await page(messenger, card, "sla:44:supervisor:x")
    except SendFailed:
        pass
    else:
        raise AssertionError("a dead page must fail the step")
    [row] = s.outbox.list_sync()
    assert (row.status, row.errcode) == ("dead", 40003)
    assert cards_for(env) == []

    await page(messenger, card, "sla:44:supervisor:x")  # the step's retry, WeCom fine again

    [row] = s.outbox.list_sync()
    assert (row.status, row.attempts, row.errcode) == ("sent", 1, None)
    assert len(cards_for(env)) == 1
    # once sent, the same key is a duplicate again: nothing more reaches the advisor
    await page(messenger, card, "sla:44:supervisor:x")
    assert len(cards_for(env)) == 1 and len(s.outbox.list_sync()) == 1

"""The worker with an injected clock: each step fires once, on time or marked late; restarts,
crashes mid-step, failed sends, nobody on duty, acknowledgements around the deadline."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bot.paging import clocks as rules
from tests.paging.conftest import complaint, new_guest


def steps_by_name(paging, case_id):
    return {s.step: s for s in paging.steps(case_id)}


async def run_at(worker, clock, moment):
    clock.set(moment)
    return await worker.tick()


async def test_complaint_pages_at_once_then_repages_escalates_once(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    t0 = ticket.created_at
    worker = make_worker()

    report = await run_at(worker, clock, t0)
    assert report.created == 1 and report.fired == 1 and report.late == 0
    case = paging.clock_for("ticket", ticket.id)
    assert case.paged_userid == "advisor_li" and case.state == "running"
    cards = messenger.to("app", "advisor_li")
    assert len(cards) == 1
    card = cards[0]
    assert card["msgtype"] == "textcard"
    assert f"#{case.id}" in card["title"] and "林晓" in card["title"] and "金卡" in card["title"]
    assert "蜜月" in card["description"] and "房间有很重的烟味" in card["description"]
    assert "海鲜过敏" not in card["description"]  # health data stays out of WeCom messages
    assert "接单时限" in card["description"] and f"接单 {case.id}" in card["description"]
    assert f"/cases/{case.id}?sig=" in card["url"]
    assert len(card["description"].encode()) <= 512 and len(card["title"].encode()) <= 128

    # Many ticks between steps change nothing.
    for offset in (0.5, 1, 2, 4.9):
        assert (await run_at(worker, clock, t0 + dt.timedelta(seconds=offset))).fired == 0

    assert (await run_at(worker, clock, t0 + dt.timedelta(seconds=5))).fired == 1  # repage
    assert len(messenger.to("app", "advisor_li")) == 2
    # each card's link names its step: two pages never read the same to WeCom's duplicate check
    steps = steps_by_name(paging, case.id)
    assert [c["url"].rsplit("&step=", 1)[-1] for c in messenger.to("app", "advisor_li")] == [
        str(steps["page"].id),
        str(steps["repage"].id),
    ]
    report = await run_at(worker, clock, t0 + dt.timedelta(seconds=10))  # ack deadline
    assert report.fired == 1 and report.late == 0
    sup = messenger.to("app", "supervisor_wang")
    assert (
        len(sup) == 1 and "超时未接单" in sup[0]["title"] and "李顾问未在" in sup[0]["description"]
    )
    told = messenger.to("guest", sender)
    assert len(told) == 1 and "抱歉让您久等了" in told[0]["text"] and "主管" in told[0]["text"]

    for offset in (11, 20, 59):
        assert (await run_at(worker, clock, t0 + dt.timedelta(seconds=offset))).fired == 0
    assert (
        await run_at(worker, clock, t0 + dt.timedelta(seconds=60))
    ).fired == 1  # resolve deadline
    assert (await run_at(worker, clock, t0 + dt.timedelta(seconds=3600))).fired == 0
    steps = steps_by_name(paging, case.id)
    assert {n: s.status for n, s in steps.items()} == {
        "page": "sent",
        "repage": "sent",
        "escalate": "sent",
        "escalate_resolve": "sent",
    }
    assert not any(s.late for s in steps.values())
    assert len(messenger.to("app", "supervisor_wang")) == 2
    assert len(messenger.to("guest", sender)) == 2
    # Sent pages are mirrored into the CRM profile.
    pages = crm.profile(sender)["pages"]
    assert [p["step"] for p in pages] == ["page", "repage", "escalate", "escalate_resolve"]


@pytest.mark.parametrize(
    "ack_offset,escalated,ack_outcome",
    [
        (9.999, False, "met"),  # just before the deadline
        (10.0, False, "met"),  # exactly at it
        (10.001, True, "missed"),  # just after it, but before the worker got there
    ],
)
async def test_ack_just_before_at_and_after_the_deadline(
    crm, paging, make_worker, clock, messenger, ack_offset, escalated, ack_outcome
):
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    t0 = ticket.created_at
    worker = make_worker()
    await run_at(worker, clock, t0)
    await run_at(worker, clock, t0 + dt.timedelta(seconds=5))
    case = paging.clock_for("ticket", ticket.id)
    acked_at = t0 + dt.timedelta(seconds=ack_offset)
    paging.acknowledge(case.id, "advisor_li", acked_at)
    await run_at(worker, clock, acked_at + dt.timedelta(milliseconds=1))
    escalate = steps_by_name(paging, case.id)["escalate"]
    assert (escalate.status == "sent") is escalated
    assert len(messenger.to("app", "supervisor_wang")) == int(escalated)
    case = paging.clock(case.id)
    assert rules.outcome(case.ack_due_at, case.acknowledged_at, acked_at) == ack_outcome
    # The resolve escalation is still ahead: acknowledging does not stop it.
    assert steps_by_name(paging, case.id)["escalate_resolve"].status == "pending"


async def test_ack_after_escalation_fired_changes_nothing_sent(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    t0 = ticket.created_at
    worker = make_worker()
    for offset in (0, 5, 10):
        await run_at(worker, clock, t0 + dt.timedelta(seconds=offset))
    case = paging.clock_for("ticket", ticket.id)
    clock_after, outcome = paging.acknowledge(case.id, "advisor_li", t0 + dt.timedelta(seconds=12))
    assert outcome == "acknowledged"
    await run_at(worker, clock, t0 + dt.timedelta(seconds=12))
    assert len(messenger.to("app", "supervisor_wang")) == 1
    # the guest heard the slip, then who took it
    texts = [m["text"] for m in messenger.to("guest", sender)]
    assert len(texts) == 2 and "李顾问已接手" in texts[1]
    assert rules.outcome(clock_after.ack_due_at, clock_after.acknowledged_at, clock()) == "missed"


async def test_ack_before_repage_stops_pages_and_tells_the_guest(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    t0 = ticket.created_at
    worker = make_worker()
    await run_at(worker, clock, t0)
    case = paging.clock_for("ticket", ticket.id)
    paging.acknowledge(case.id, "advisor_li", t0 + dt.timedelta(seconds=2))
    for offset in (2, 5, 10, 30):
        await run_at(worker, clock, t0 + dt.timedelta(seconds=offset))
    steps = steps_by_name(paging, case.id)
    assert steps["repage"].status == "skipped" and steps["escalate"].status == "skipped"
    assert steps["guest_ack"].status == "sent"
    assert len(messenger.to("app", "advisor_li")) == 1
    assert messenger.to("app", "supervisor_wang") == []
    told = messenger.to("guest", sender)
    assert len(told) == 1 and "李顾问已接手您的普通投诉" in told[0]["text"]
    # A second 接单 by someone else is refused with who has it.
    _, outcome = paging.acknowledge(case.id, "advisor_zhou", t0 + dt.timedelta(seconds=3))
    assert outcome == "taken"


async def test_worker_killed_and_restarted_mid_clock_fires_missed_steps_once_marked_late(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    t0 = ticket.created_at
    first = make_worker("w-before")
    await run_at(first, clock, t0)  # the page goes out, then the worker is killed
    del first
    # Down for 30 s: the repage (5 s) and the escalation (10 s) fell due meanwhile.
    second = make_worker("w-after")
    report = await run_at(second, clock, t0 + dt.timedelta(seconds=30))
    assert report.fired == 2 and report.late == 2
    steps = steps_by_name(paging, paging.clock_for("ticket", ticket.id).id)
    assert steps["repage"].late and steps["escalate"].late and not steps["page"].late
    repage_card = messenger.to("app", "advisor_li")[-1]
    assert "延迟发送" in repage_card["description"]
    for offset in (30, 31, 45):
        assert (await run_at(second, clock, t0 + dt.timedelta(seconds=offset))).fired == 0
    assert len(messenger.to("app", "advisor_li")) == 2
    assert len(messenger.to("app", "supervisor_wang")) == 1


async def test_worker_dying_mid_step_is_fired_again_after_its_lease(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    t0 = ticket.created_at
    dead = make_worker("w-dead")
    clock.set(t0)
    await dead.discover(t0)
    claimed = paging.claim_due(t0, "w-dead", lease=dead.lease)  # claimed, then the process died
    assert len(claimed) == 1
    survivor = make_worker("w-alive")
    assert (await run_at(survivor, clock, t0 + dt.timedelta(seconds=1))).fired == 0  # lease running
    assert messenger.sent == []
    report = await run_at(survivor, clock, t0 + dt.timedelta(seconds=61))
    assert report.released == 1 and report.fired >= 1
    page = steps_by_name(paging, paging.clock_for("ticket", ticket.id).id)["page"]
    assert page.status == "sent" and page.late and page.attempts == 2
    assert len([m for m in messenger.to("app", "advisor_li") if "新普通投诉" in m["title"]]) == 1
    # the dead worker cannot finish what is no longer its claim
    assert paging.finish_step(page.id, "w-dead", "sent", fired_at=clock()) is False


async def test_failed_send_is_retried_without_resending_what_went_out(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    t0 = ticket.created_at
    worker = make_worker(retry_after=dt.timedelta(seconds=2))
    await run_at(worker, clock, t0)
    case = paging.clock_for("ticket", ticket.id)
    messenger.fail_targets.add("guest:" + sender)  # the guest notice fails, the supervisor's works
    report = await run_at(worker, clock, t0 + dt.timedelta(seconds=10))
    assert report.retried >= 1
    escalate = steps_by_name(paging, case.id)["escalate"]
    assert escalate.status == "pending" and escalate.delivered == ("supervisor:supervisor_wang",)
    messenger.fail_targets.clear()
    assert (await run_at(worker, clock, t0 + dt.timedelta(seconds=11))).fired == 0  # backing off
    report = await run_at(worker, clock, t0 + dt.timedelta(seconds=12))
    escalate = steps_by_name(paging, case.id)["escalate"]
    assert escalate.status == "sent" and escalate.attempts == 2 and escalate.late
    assert len(messenger.to("app", "supervisor_wang")) == 1  # not sent again
    assert len(messenger.to("guest", sender)) == 1


async def test_send_failing_for_good_ends_failed(crm, paging, make_worker, clock, messenger):
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    t0 = ticket.created_at
    worker = make_worker(retry_after=dt.timedelta(seconds=1), max_attempts=3)
    messenger.fail_next = 1000  # WeCom refuses everything
    for offset in range(0, 5):
        await run_at(worker, clock, t0 + dt.timedelta(seconds=offset * 0.1))
    moment = t0
    for _ in range(5):
        moment += dt.timedelta(seconds=10)
        await run_at(worker, clock, moment)
    page = steps_by_name(paging, paging.clock_for("ticket", ticket.id).id)["page"]
    assert page.status == "failed" and page.attempts == 3 and "simulated failure" in page.error
    assert messenger.sent == []


async def test_a_page_that_cannot_reach_one_advisor_goes_to_another_on_duty(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    t0 = ticket.created_at
    worker = make_worker(retry_after=dt.timedelta(seconds=1))
    messenger.fail_targets.add("app:advisor_li")
    await run_at(worker, clock, t0)
    await run_at(worker, clock, t0 + dt.timedelta(seconds=1))
    page = steps_by_name(paging, paging.clock_for("ticket", ticket.id).id)["page"]
    assert page.status == "sent" and page.recipients == ("app:advisor_zhou",)
    assert paging.clock_for("ticket", ticket.id).paged_userid == "advisor_zhou"


async def test_nobody_on_duty_pages_the_supervisor(
    crm, paging, policy, messenger, clock, make_worker
):
    import dataclasses

    prop = policy.properties["default"]
    night_only = tuple(dataclasses.replace(a, on_duty=()) for a in prop.roster)
    policy.properties["default"] = dataclasses.replace(prop, roster=night_only)  # nobody, ever
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    worker = make_worker()
    await run_at(worker, clock, ticket.created_at)
    cards = messenger.to("app", "supervisor_wang")
    assert len(cards) == 1 and "无人值班" in cards[0]["description"]
    assert messenger.to("app", "advisor_li") == []


async def test_major_incident_goes_to_the_emergency_group_and_duty_manager(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    ticket = complaint(crm, sender, sla_class="complaint_major")
    worker = make_worker()
    await run_at(worker, clock, ticket.created_at)
    posts = messenger.to("group")
    assert len(posts) == 1 and posts[0]["to"].startswith(
        "http://127.0.0.1:8800/cgi-bin/webhook/send"
    )
    assert "重大事件" in posts[0]["text"] and "林晓" in posts[0]["text"]
    assert posts[0]["mention"] == ["manager_zhao"]
    assert len(messenger.to("app", "manager_zhao")) == 1
    assert len(messenger.to("app", "advisor_li")) == 1


async def test_handoff_escalates_to_the_next_advisor_on_the_roster(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    handoff = crm.create_handoff(sender, reason="request_human", sla_class="human_request")
    t0 = handoff.created_at
    worker = make_worker()
    await run_at(worker, clock, t0)
    case = paging.clock_for("handoff", handoff.id)
    assert case.paged_userid == "advisor_li"
    await run_at(worker, clock, t0 + dt.timedelta(seconds=5))
    rerouted = messenger.to("app", "advisor_zhou")
    assert len(rerouted) == 1 and "转派给您" in rerouted[0]["title"]
    assert paging.clock(case.id).paged_userid == "advisor_zhou"
    assert "其他值班顾问" in messenger.to("guest", sender)[0]["text"]


async def test_two_workers_on_one_database_send_each_step_once(
    crm, paging, make_worker, clock, messenger
):
    sender = new_guest(crm)
    tickets = [complaint(crm, sender) for _ in range(5)]
    t0 = max(t.created_at for t in tickets)
    a, b = make_worker("a"), make_worker("b")
    for offset in (0, 5, 10, 60):
        clock.set(t0 + dt.timedelta(seconds=offset))
        await asyncio.gather(a.tick(), b.tick())
    keys = [m["dedupe_key"] for m in messenger.sent]
    assert len(keys) == len(set(keys))
    assert len(messenger.to("app", "supervisor_wang")) == 10  # escalate + escalate_resolve, 5 cases
    assert all(s.status == "sent" for s in paging.steps())


async def test_unknown_class_closed_subjects_and_old_ones_get_no_clock(
    crm, paging, make_worker, clock, messenger, caplog
):
    sender = new_guest(crm)
    odd = crm.create_ticket(sender, kind="complaint", sla_class="no_such_class")
    closed = crm.create_order(sender, item="接机", sla_class="addon_order", status="confirmed")
    unclassed = crm.create_ticket(sender, kind="complaint")
    worker = make_worker()
    await run_at(worker, clock, odd.created_at)
    await run_at(worker, clock, odd.created_at + dt.timedelta(seconds=1))
    assert paging.clocks() == [] and messenger.sent == []
    assert caplog.text.count("no_such_class") == 1
    # A subject older than the discovery window is history, not news.
    old_worker = make_worker(discovery_window=dt.timedelta(seconds=10))
    late_ticket = complaint(crm, sender)
    await run_at(old_worker, clock, late_ticket.created_at + dt.timedelta(seconds=11))
    assert paging.clocks() == []
    assert closed and unclassed


async def test_an_order_the_guest_cancels_pages_nobody_again(
    crm, paging, make_worker, clock, messenger
):
    """Through the guest's own path (OrderService.cancel, what action_cancel_order calls): the
    worker sees the cancelled order, cancels every step of its clock, tells the paged advisor
    once, and neither re-pages, escalates nor says sorry to the guest."""
    from bot.orders.service import OrderService

    sender = new_guest(crm)
    order = crm.create_order(sender, item="接机", sla_class="addon_order")
    worker = make_worker()
    await run_at(worker, clock, order.created_at)
    case = paging.clock_for("order", order.id)
    [page] = messenger.to("app", "advisor_li")
    assert page["msgtype"] == "textcard" and f"#{case.id}" in page["title"]

    reply = OrderService(crm).cancel(sender, f"取消订单{order.id}")
    assert "已为您取消" in reply.texts[0]
    for seconds in (1, 2, 6, 11, 30, 61, 300):  # past re-page, escalation and resolve deadlines
        await run_at(worker, clock, order.created_at + dt.timedelta(seconds=seconds))
    assert paging.clock(case.id).state == rules.CANCELLED
    [told] = messenger.to("app", "advisor_li")[1:]
    assert told["msgtype"] == "text" and f"#{case.id}" in told["text"] and "取消" in told["text"]
    assert len(messenger.sent) == 2  # the page, the one cancellation note: nothing to anyone else
    assert messenger.to("guest") == [] and messenger.to("app", "supervisor_wang") == []
    statuses = {s.step: s.status for s in paging.steps(case.id)}
    assert statuses.pop("page") == "sent" and statuses.pop("advisor_cancelled") == "sent"
    assert set(statuses.values()) == {"skipped"}


async def test_an_order_cancelled_before_anyone_was_paged_tells_nobody(
    crm, paging, make_worker, clock, messenger
):
    from bot.orders.service import OrderService

    sender = new_guest(crm)
    order = crm.create_order(sender, item="接机", sla_class="addon_order")
    OrderService(crm).cancel(sender, "")
    worker = make_worker()
    for seconds in (0, 6, 61):
        await run_at(worker, clock, order.created_at + dt.timedelta(seconds=seconds))
    assert paging.clock_for("order", order.id) is None and messenger.sent == []


async def test_run_loop_pages_a_new_complaint_and_stops(crm, paging, policy, messenger):
    """The real loop with the real clock (no timing asserted: it pages, then stops)."""
    from bot.paging.context import GuestContext
    from bot.paging.worker import PagingWorker

    worker = PagingWorker(paging, policy, messenger, context=GuestContext(crm), poll_s=0.05)
    task = asyncio.ensure_future(worker.run())
    sender = new_guest(crm)
    complaint(crm, sender)
    for _ in range(200):
        if messenger.to("app", "advisor_li"):
            break
        await asyncio.sleep(0.05)
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert len(messenger.to("app", "advisor_li")) == 1


async def test_a_major_incident_updates_the_guest_on_the_policy_interval_until_closed(
    crm, paging, make_worker, clock, messenger, policy
):
    """SPEC: a major incident gets updates to the guest until it is closed. The fast policy
    says every 15 s from 15 s on (4 at most); resolving stops them."""
    from bot.complaints.service import ComplaintService
    from bot.handoff import HandoffService
    from bot.paging.service import PagingService

    sender = new_guest(crm)
    ComplaintService(crm, HandoffService(crm)).triage(sender, "我老公在泳池摔倒受伤了，流了很多血")
    ticket = next(t for t in crm.tickets(sender) if t.severity == "major")
    worker = make_worker()
    t0 = ticket.created_at
    await run_at(worker, clock, t0)
    case = paging.clock_for("ticket", ticket.id)
    service = PagingService(paging, policy, messenger, crm=crm, clock=clock, worker_id="app")
    clock.set(t0 + dt.timedelta(seconds=5))
    await service.handle_command("advisor_li", f"接单 {case.id}")

    def updates():
        return [m["text"] for m in messenger.to("guest", sender) if "仍在持续跟进" in m["text"]]

    for seconds in (15, 16, 30, 31):
        await run_at(worker, clock, t0 + dt.timedelta(seconds=seconds))
    assert len(updates()) == 2 and all(f"编号 {case.id}" in u and "李顾问" in u for u in updates())
    clock.set(t0 + dt.timedelta(seconds=35))
    await service.handle_command("advisor_li", f"解决 {case.id} 已送医，伤口已处理")
    for seconds in (45, 60, 120):
        await run_at(worker, clock, t0 + dt.timedelta(seconds=seconds))
    assert len(updates()) == 2  # closed: no more updates
    names = {s.step: s.status for s in paging.steps(case.id)}
    assert names["guest_update"] == names["guest_update_2"] == "sent"
    assert names["guest_update_3"] == names["guest_update_4"] == "skipped"


@pytest.mark.parametrize(
    "step,problem",
    [
        ("{name: u, after: 1m, every: 1h, until: none, notify: [guest_update]}", "until"),
        ("{name: u, after: 1m, times: 3, notify: [guest_update]}", "'times' needs 'every'"),
        (
            "{name: u, after: 1m, every: 1h, times: 0, until: resolve, notify: [guest_update]}",
            "1-99",
        ),
    ],
)
def test_repeated_steps_are_validated(step, problem, tmp_path):
    from bot.paging.policy import PolicyError, load_policy
    from tests.paging.conftest import FAST_POLICY

    text = FAST_POLICY.read_text(encoding="utf-8").replace(
        "      - {name: guest_update, after: 15s, every: 15s, times: 4, until: resolve, "
        "notify: [guest_update]}",
        f"      - {step}",
    )
    assert step in text
    path = tmp_path / "policy.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert problem in str(err.value)

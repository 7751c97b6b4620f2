"""Advisors' commands end to end against the database (fake WeCom, fake Rasa): each state change
is confirmed, audited, mirrored onto the CRM record, and the guest is told."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.paging.service import PagingService, parse_rating
from tests.paging.conftest import complaint, new_guest


class FakeHandoff:
    def __init__(self):
        self.calls = []
        self.fail = False

    async def take_over(self, sender_id, advisor):
        self.calls.append(("take_over", sender_id, advisor))
        return ["机器人暂停失败（down）"] if self.fail else []

    async def hand_back(self, sender_id):
        self.calls.append(("hand_back", sender_id))
        return []

    async def queue(self, sender_id):
        self.calls.append(("queue", sender_id))


@pytest.fixture
def handoff():
    return FakeHandoff()


@pytest.fixture
def service(paging, policy, messenger, crm, clock, handoff):
    return PagingService(
        paging, policy, messenger, crm=crm, handoff=handoff, clock=clock, worker_id="app-test"
    )


async def paged_case(crm, paging, make_worker, clock, subject="ticket"):
    sender = new_guest(crm)
    if subject == "ticket":
        record = complaint(crm, sender)
    elif subject == "order":
        record = crm.create_order(sender, item="接机", sla_class="addon_order")
    else:
        record = crm.create_handoff(sender, reason="request_human", sla_class="human_request")
    clock.set(record.created_at)
    worker = make_worker()
    await worker.tick()
    return sender, record, paging.clock_for(subject, record.id), worker


async def test_ack_confirms_tells_the_guest_mirrors_and_audits(
    crm, paging, make_worker, clock, service, messenger
):
    sender, ticket, case, worker = await paged_case(crm, paging, make_worker, clock)
    clock.advance(3)
    reply = await service.handle_command("advisor_li", f"接单 {case.id}")
    assert reply.startswith(f"已接单 #{case.id}（普通投诉 · 林晓）") and "客人已收到通知" in reply
    assert "超时" not in reply
    told = messenger.to("guest", sender)
    assert len(told) == 1 and "李顾问已接手" in told[0]["text"]
    assert crm.ticket(ticket.id).status == "acknowledged"
    audit = crm.audit_entries(action="sla.acknowledge")
    assert audit and audit[0].actor == "advisor:advisor_li" and audit[0].detail["case"] == case.id
    # The worker does not deliver the notice a second time, nor escalate.
    clock.advance(30)
    await worker.tick()
    assert len(messenger.to("guest", sender)) == 1
    assert messenger.to("app", "supervisor_wang") == []
    # Again, by someone else, and by the same advisor
    assert "已由 李顾问" in await service.handle_command("advisor_zhou", f"接单 {case.id}")
    assert "您已接过" in await service.handle_command("advisor_li", f"接单 {case.id}")


async def test_ack_without_a_number_takes_the_only_case_paged_to_me(
    crm, paging, make_worker, clock, service
):
    sender, ticket, case, _ = await paged_case(crm, paging, make_worker, clock)
    assert (await service.handle_command("advisor_li", "接单")).startswith(f"已接单 #{case.id}")
    assert "请写上编号" in await service.handle_command("advisor_li", "接单")


async def test_late_ack_says_so(crm, paging, make_worker, clock, service):
    sender, ticket, case, worker = await paged_case(crm, paging, make_worker, clock)
    clock.advance(13)
    reply = await service.handle_command("advisor_li", f"接单 {case.id}")
    assert "超时 3秒" in reply


async def test_unknown_case_unknown_person_garbage_and_help(
    crm, paging, make_worker, clock, service
):
    await paged_case(crm, paging, make_worker, clock)
    assert "没有编号为 999 的单" in await service.handle_command("advisor_li", "接单 999")
    assert "不在值班名单中" in await service.handle_command("intruder", "接单 1")
    assert "没看懂" in await service.handle_command("advisor_li", "今天天气不错")
    assert "接单 N" in await service.handle_command("intruder", "帮助")


async def test_take_over_pauses_the_bot_and_hand_back_resumes_it(
    crm, paging, make_worker, clock, service, messenger, handoff
):
    sender, ticket, case, _ = await paged_case(crm, paging, make_worker, clock)
    clock.advance(2)
    reply = await service.handle_command("advisor_li", f"接管 {case.id}")
    assert reply.startswith(f"已接管 #{case.id}") and "机器人对 林晓 已暂停" in reply
    assert handoff.calls == [("take_over", sender, "advisor_li")]
    assert "我是李顾问" in messenger.to("guest", sender)[-1]["text"]
    current = paging.clock(case.id)
    assert current.state == "acknowledged" and current.takeover_userid == "advisor_li"
    # Guest messages now go to the advisor (not for 微信客服 guests: see the next test)
    assert await service.forward_guest_message("wecom:other", "hi") is False
    # Hand back
    clock.advance(60)
    reply = await service.handle_command("advisor_li", f"交还 {case.id}")
    assert reply.startswith(f"已交还 #{case.id}") and "该单仍未结案" in reply
    assert handoff.calls[-1] == ("hand_back", sender)
    assert "礼宾助手继续为您服务" in messenger.to("guest", sender)[-1]["text"]
    assert "没有人工接管" in await service.handle_command("advisor_li", f"交还 {case.id}")
    # and again: a second takeover of the same case works (its own notice)
    assert (await service.handle_command("advisor_li", f"接管 {case.id}")).startswith("已接管")
    assert "我是李顾问" in messenger.to("guest", sender)[-1]["text"]


async def test_forward_while_taken_over_for_non_kf_guests(
    crm, paging, make_worker, clock, service, messenger
):
    crm.get_or_create_guest("wecom:wm-guest", name="周先生")
    ticket = complaint(crm, "wecom:wm-guest")
    clock.set(ticket.created_at)
    await make_worker().tick()
    case = paging.clock_for("ticket", ticket.id)
    await service.handle_command("advisor_li", "接管 周先生")
    assert await service.forward_guest_message("wecom:wm-guest", "还要多久？") is True
    forwarded = messenger.to("app", "advisor_li")[-1]
    assert (
        forwarded["msgtype"] == "text"
        and "还要多久？" in forwarded["text"]
        and f"#{case.id}" in forwarded["text"]
    )


async def test_take_over_by_guest_name_and_problems_are_reported(
    crm, paging, make_worker, clock, service, handoff
):
    sender, ticket, case, _ = await paged_case(crm, paging, make_worker, clock)
    handoff.fail = True
    reply = await service.handle_command("advisor_zhou", "接管 林晓")
    assert reply.startswith(f"已接管 #{case.id}") and "注意：机器人暂停失败" in reply
    assert "没有找到“张三”" in await service.handle_command("advisor_zhou", "接管 张三")
    assert "正由 周顾问 接待" in await service.handle_command("advisor_li", f"接管 {case.id}")


async def test_handoff_ack_is_a_takeover_and_hand_back_closes_it_with_a_rating(
    crm, paging, make_worker, clock, service, messenger, handoff
):
    sender, record, case, _ = await paged_case(crm, paging, make_worker, clock, subject="handoff")
    reply = await service.handle_command("advisor_li", f"接单 {case.id}")
    assert reply.startswith(f"已接管 #{case.id}")
    assert crm.open_handoff(sender).status == "active"
    clock.advance(120)
    reply = await service.handle_command("advisor_li", f"交还 {case.id}")
    assert reply.startswith(f"已交还 #{case.id}")
    assert crm.open_handoff(sender) is None  # returned
    last = messenger.to("guest", sender)[-1]["text"]
    assert "礼宾助手继续为您服务" in last and "打分" in last
    assert await service.maybe_record_rating(sender, "5") is not None
    assert paging.clock(case.id).rating == 5


async def test_note_resolve_and_rating(crm, paging, make_worker, clock, service, messenger):
    sender, ticket, case, worker = await paged_case(crm, paging, make_worker, clock)
    await service.handle_command("advisor_li", f"接单 {case.id}")
    assert (
        await service.handle_command("advisor_li", f"备注 {case.id} 已联系客房部")
        == f"已备注 #{case.id}。"
    )
    assert "请写上处理说明" in await service.handle_command("advisor_li", f"解决 {case.id}")
    clock.advance(20)
    reply = await service.handle_command("advisor_li", f"解决 {case.id} 已为您更换房间并赠送下午茶")
    assert reply.startswith(f"已结案 #{case.id}（接单按时，解决按时）") and "邀请评分" in reply
    told = messenger.to("guest", sender)[-1]["text"]
    assert "已处理完毕：已为您更换房间并赠送下午茶" in told and "1-5" in told
    assert crm.ticket(ticket.id).status == "resolved"
    assert [n.kind for n in paging.notes(case.id)] == ["note", "resolution"]
    # The resolve escalation will never fire now.
    clock.advance(120)
    await worker.tick()
    assert messenger.to("app", "supervisor_wang") == []
    # Rating
    assert await service.maybe_record_rating(sender, "你好") is None
    assert await service.maybe_record_rating("someone-else", "5") is None
    thanks = await service.maybe_record_rating(sender, "４分")
    assert thanks and "感谢您的评分" in thanks
    assert crm.ticket(ticket.id).rating == 4 and paging.clock(case.id).rating == 4
    assert await service.maybe_record_rating(sender, "5") is None  # once
    assert "已结案" in await service.handle_command("advisor_li", f"解决 {case.id} 再次")
    actions = [a.action for a in crm.audit_entries()]
    for action in ("sla.acknowledge", "sla.note", "sla.resolve", "sla.rating"):
        assert action in actions


async def test_low_rating_alerts_the_supervisor(
    crm, paging, make_worker, clock, service, messenger
):
    sender, ticket, case, _ = await paged_case(crm, paging, make_worker, clock)
    await service.handle_command("advisor_li", f"解决 {case.id} 已处理")
    await service.maybe_record_rating(sender, "1")
    alert = messenger.to("app", "supervisor_wang")[-1]
    assert "评分 1 分" in alert["text"]


async def test_resolve_while_taken_over_hands_back_first(
    crm, paging, make_worker, clock, service, handoff
):
    sender, ticket, case, _ = await paged_case(crm, paging, make_worker, clock)
    await service.handle_command("advisor_li", f"接管 {case.id}")
    await service.handle_command("advisor_li", f"解决 {case.id} 已处理")
    assert handoff.calls[-1] == ("hand_back", sender)
    assert paging.active_takeover(sender) is None


async def test_queue_lists_mine_and_waiting_with_breaches(crm, paging, make_worker, clock, service):
    sender, ticket, case, worker = await paged_case(crm, paging, make_worker, clock)
    crm.get_or_create_guest("kf:other", name="陈志远")
    order = crm.create_order("kf:other", item="接机", sla_class="addon_order")
    clock.set(order.created_at)
    await worker.tick()
    order_case = paging.clock_for("order", order.id)
    await service.handle_command("advisor_zhou", f"接单 {order_case.id}")
    clock.advance(15)
    text = await service.handle_command("advisor_li", "队列")
    mine, waiting = text.split("待接单")
    assert f"#{case.id} 普通投诉 · 林晓" in mine and "已超时" in mine
    assert f"#{order_case.id}" not in text  # zhou's
    zhou = await service.handle_command("advisor_zhou", "队列")
    assert f"#{order_case.id} 附加服务订单 · 陈志远 · 解决" in zhou
    assert f"#{case.id}" in zhou.split("待接单")[1]


async def test_reply_relays_to_the_guest(crm, paging, make_worker, clock, service, messenger):
    sender, ticket, case, _ = await paged_case(crm, paging, make_worker, clock)
    reply = await service.handle_command("advisor_li", f"回复 {case.id} 您好，客房部五分钟内到")
    assert reply.startswith("已发送给客人 林晓")
    assert messenger.to("guest", sender)[-1]["text"] == "李顾问：您好，客房部五分钟内到"
    await service.handle_command("advisor_li", f"接管 {case.id}")
    assert "微信客服里回复" in await service.handle_command("advisor_li", f"回复 {case.id} 好的")


async def test_app_handler_answers_text_and_ignores_events(
    crm, paging, make_worker, clock, service, messenger
):
    from bot.wecom.surfaces.app import AppMessage

    await paged_case(crm, paging, make_worker, clock)
    assert (
        await service.on_app_message(
            AppMessage(userid="advisor_li", msgtype="event", event="enter_agent")
        )
        is False
    )
    assert (
        await service.on_app_message(
            AppMessage(userid="advisor_li", msgtype="text", text="帮助", msgid="m1")
        )
        is True
    )
    reply = messenger.to("app", "advisor_li")[-1]
    assert (
        reply["msgtype"] == "text"
        and "接单 N" in reply["text"]
        and reply["dedupe_key"] == "paging:reply:m1"
    )


@pytest.mark.parametrize(
    "text,score",
    [
        ("5", 5),
        ("５", 5),
        ("5分", 5),
        (" 3 ", 3),
        ("五星", 5),
        ("一分", 1),
        ("⭐⭐⭐⭐", 4),
        ("4！", 4),
        ("0", None),
        ("6", None),
        ("55", None),
        ("5星级酒店", None),
        ("", None),
        ("很好", None),
    ],
)
def test_parse_rating(text, score):
    assert parse_rating(text) == score


# ---- the supplier's answer to an order (bot/orders/supplier.py) ---------------------------------


async def test_ack_of_an_order_does_not_claim_the_supplier_confirmed(
    crm, paging, make_worker, clock, service, messenger
):
    sender, order, case, worker = await paged_case(crm, paging, make_worker, clock, "order")
    reply = await service.handle_command("advisor_li", f"接单 {case.id}")
    assert f"确认 {case.id}" in reply and f"婉拒 {case.id}" in reply
    assert crm.order(order.id).status == "requested"  # an advisor is on it; no supplier yet
    [ack] = messenger.to("guest", sender)
    assert "确认" not in ack["text"]  # the guest is told who took it, not that it is confirmed


async def test_supplier_confirmation_confirms_closes_and_tells_the_guest(
    crm, paging, make_worker, clock, service, messenger
):
    sender, order, case, worker = await paged_case(crm, paging, make_worker, clock, "order")
    await service.handle_command("advisor_li", f"接单 {case.id}")
    reply = await service.handle_command("advisor_li", f"确认 {case.id} 司机王师傅，车牌琼B12345")
    assert (
        reply.startswith(f"已记录 #{case.id} 订单 {order.id}（接机）供应商确认")
        and "客人已收到" in reply
    )
    assert crm.order(order.id).status == "confirmed"
    assert paging.clock(case.id).state == "resolved"
    told = messenger.to("guest", sender)[-1]["text"]
    assert f"订单号 {order.id}" in told and "已经确认可以安排" in told and "琼B12345" in told
    assert "1-5" not in told  # no rating request for a confirmation
    assert "order.supplier_confirmed" in {
        a.action for a in crm.audit_entries(subject_type="order", subject_id=order.id)
    }
    again = await service.handle_command("advisor_li", f"确认 {case.id}")
    assert "已经是供应商确认状态" in again and len(messenger.to("guest", sender)) == 2
    # nothing more pages about it: the loop is closed
    sent = len(messenger.sent)
    for seconds in (10, 60, 300):
        clock.set(order.created_at + dt.timedelta(seconds=seconds))
        await worker.tick()
    assert len(messenger.sent) == sent


async def test_supplier_decline_cancels_with_the_reason_and_no_cancel_note(
    crm, paging, make_worker, clock, service, messenger
):
    sender, order, case, worker = await paged_case(crm, paging, make_worker, clock, "order")
    hint = await service.handle_command("advisor_li", f"婉拒 {case.id}")
    assert "原因" in hint and crm.order(order.id).status == "requested"
    reply = await service.handle_command("advisor_li", f"婉拒 {case.id} 当天的车都已约满")
    assert "供应商无法安排，订单已取消" in reply
    assert crm.order(order.id).status == "cancelled"
    told = messenger.to("guest", sender)[-1]["text"]
    assert told.startswith("很抱歉") and "当天的车都已约满" in told and f"订单号 {order.id}" in told
    # the worker must not take this for the guest's own cancellation
    sent = len(messenger.sent)
    clock.advance(2)
    await worker.tick()
    assert len(messenger.sent) == sent and paging.clock(case.id).state == "resolved"
    late = await service.handle_command("advisor_li", f"确认 {case.id}")
    assert "已取消" in late and crm.order(order.id).status == "cancelled"


async def test_confirm_or_decline_only_apply_to_orders(crm, paging, make_worker, clock, service):
    sender, ticket, case, worker = await paged_case(crm, paging, make_worker, clock)
    assert "不是订单" in await service.handle_command("advisor_li", f"确认 {case.id}")
    assert "请写上编号" in await service.handle_command("advisor_li", "确认")


async def test_the_console_calls_the_same_service(
    crm, paging, make_worker, clock, service, messenger
):
    """SupplierDesk is a plain service: the staff console uses it without any WeCom command."""
    sender, order, case, worker = await paged_case(crm, paging, make_worker, clock, "order")
    outcome = await service.supplier.decline(order.id, "advisor_zhou", "潜水船检修")
    assert outcome.ok and outcome.status == "declined" and outcome.case_id == case.id
    assert outcome.guest_told and crm.order(order.id).status == "cancelled"
    missing = await service.supplier.confirm(999999, "advisor_zhou")
    assert missing.status == "not_found" and not missing.ok


# ---- complaint follow-through: nature, remedy, what was offered, the dedicated advisor ----------


async def test_card_shows_nature_and_remedy_and_later_pages_flag_the_guest(
    crm, paging, make_worker, clock, service, messenger
):
    """A complaint opened by the guest's flow (ComplaintService.triage) pages with its nature and
    the policy's remedy; the advisor records what was offered; the guest's next request is
    flagged on its page and goes to the advisor who handled the complaint."""
    from bot.complaints.service import ComplaintService
    from bot.handoff import HandoffService

    sender = new_guest(crm)
    complaints = ComplaintService(crm, HandoffService(crm))
    complaints.triage(sender, "导游迟到了一个多小时，行程也被砍掉了一半")
    [ticket] = crm.tickets(sender)
    assert ticket.nature == "service_failure"
    clock.set(ticket.created_at)
    worker = make_worker()
    await worker.tick()
    case = paging.clock_for("ticket", ticket.id)
    [page] = [m for m in messenger.sent if m.get("msgtype") == "textcard"]
    assert "性质：服务失误" in page["description"] and "超额补偿" in page["description"]
    assert "曾投诉" not in page["title"]  # this is the first one

    # advisor_zhou takes it and records what was offered
    await service.handle_command("advisor_zhou", f"接单 {case.id}")
    reply = await service.handle_command("advisor_zhou", f"补偿 {case.id} 赠送2000积分+下次行程8折")
    assert reply.startswith(f"已记录 #{case.id} 的补偿")
    assert [n.text for n in paging.notes(case.id) if n.kind == "compensation"] == [
        "赠送2000积分+下次行程8折"
    ]
    assert "ticket.compensation" in {a.action for a in crm.audit_entries()}
    await service.handle_command("advisor_zhou", f"解决 {case.id} 已向客人致歉并补偿")

    # weeks later the same guest orders something: flagged, and routed to advisor_zhou
    clock.advance(3 * 7 * 86400)
    order = crm.create_order(sender, item="接机", sla_class="addon_order")
    clock.set(order.created_at)
    await worker.tick()
    order_case = paging.clock_for("order", order.id)
    [later] = [
        m
        for m in messenger.sent
        if m.get("msgtype") == "textcard" and f"#{order_case.id}" in m["title"]
    ]
    assert later["to"] == "advisor_zhou"  # advisor_li is first on the roster and less loaded
    assert later["title"].endswith("·曾投诉")
    assert (
        f"#{ticket.id}" in later["description"] and "已补偿：赠送2000积分" in later["description"]
    )
    assert "专属顾问 周顾问" in later["description"]
    assert "性质" not in later["description"]  # an order has no complaint nature


async def test_force_majeure_card_names_the_alternative_plan(
    crm, paging, make_worker, clock, messenger
):
    from bot.complaints.service import ComplaintService
    from bot.handoff import HandoffService

    sender = new_guest(crm)
    ComplaintService(crm, HandoffService(crm)).triage(sender, "台风来了航班取消，我们的行程怎么办")
    ticket = crm.tickets(sender)[0]
    clock.set(ticket.created_at)
    await make_worker().tick()
    page = next(m for m in messenger.sent if m.get("msgtype") == "textcard")
    assert "性质：不可抗力" in page["description"] and "替代方案" in page["description"]


async def test_compensation_only_for_complaints(crm, paging, make_worker, clock, service):
    sender, order, case, worker = await paged_case(crm, paging, make_worker, clock, "order")
    assert "不是投诉" in await service.handle_command("advisor_li", f"补偿 {case.id} 500积分")
    assert "补偿内容" in await service.handle_command("advisor_li", f"补偿 {case.id}")

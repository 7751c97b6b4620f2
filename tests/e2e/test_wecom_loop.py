"""The design's end-to-end path through real processes, typed into the sandbox as a 微信客服 guest:
sandbox → intake server → the real `rasa run` → the real action server → CRM → the paging worker
→ a page in the sandbox's `message/send` calls. Then an add-on order the guest cancels: after the
cancellation no page about it goes out again (only the one note telling the advisor).

Nothing here is faked: the callbacks are encrypted like WeCom's, the intake server stores and
pulls them (sync_msg), Rasa runs the trained model, the actions write the CRM, the worker runs on
the fast SLA policy (tests/fixtures/sla_policy_fast.yml: re-page after 5 s, escalate at 10 s).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from bot.crm.store import CRMStore, china_today
from bot.paging.store import PagingStore

pytestmark = pytest.mark.rasa_model

COMPLAINER, ORDERER = "wm_e2e_complainer", "wm_e2e_orderer"


def wait_for(what, probe, timeout=90.0, every=0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not seen within {timeout:.0f} s: {what}")


def guest_says(stack, external_userid, text):
    try:
        answer = stack.sandbox(
            "/_sandbox/guest/kf", {"external_userid": external_userid, "text": text}
        )
    except OSError as exc:  # say why, from the processes' own logs
        raise AssertionError(
            f"{exc}\n--- sandbox ---\n{stack.log_tail('sandbox')}"
            f"\n--- intake ---\n{stack.log_tail('intake')}"
        ) from None
    assert answer["delivery"]["delivered"], answer  # the intake server took the callback


def kf_replies(stack, external_userid):
    calls = stack.sandbox("/_sandbox/calls?path=/cgi-bin/kf/send_msg")["calls"]
    return [
        c["body"]["text"]["content"]
        for c in calls
        if c["body"].get("touser") == external_userid
        and c.get("errcode") == 0
        and c["body"].get("msgtype") == "text"
    ]


def app_messages(stack):
    calls = stack.sandbox("/_sandbox/calls?path=/cgi-bin/message/send")["calls"]
    return [c for c in calls if c.get("errcode") == 0]


def about_case(message, case_id):
    body = message["body"]
    text = (body.get("textcard") or {}).get("title") or (body.get("text") or {}).get("content", "")
    return f"#{case_id}" in text


@pytest.fixture(scope="module")
def stores(rasa_stack):
    crm, paging = CRMStore(rasa_stack.database_url), PagingStore(rasa_stack.database_url)
    yield crm, paging
    crm.close()
    paging.close()


def test_a_one_message_complaint_becomes_a_ticket_and_a_page(rasa_stack, stores):
    crm, paging = stores
    sender = f"kf:{COMPLAINER}"
    guest_says(rasa_stack, COMPLAINER, "你们的房间太脏了，床单上有头发，卫生间也有异味，我很生气")

    # the ticket exists from this one message: nobody has to answer a follow-up question first
    ticket = wait_for(
        "a complaint ticket in the CRM", lambda: next(iter(crm.tickets(sender)), None)
    )
    assert (ticket.kind, ticket.sla_class) == ("complaint", "complaint_routine")
    assert "床单上有头发" in ticket.description
    case = wait_for("the worker's clock", lambda: paging.clock_for("ticket", ticket.id))
    page = wait_for(
        "the page in message/send",
        lambda: [
            m
            for m in app_messages(rasa_stack)
            if about_case(m, case.id) and m["body"]["msgtype"] == "textcard"
        ],
    )[0]
    assert page["body"]["touser"] in ("advisor_li", "advisor_zhou")
    assert "床单上有头发" in page["body"]["textcard"]["description"]
    # the guest heard empathy and the ticket number, through 微信客服
    replies = wait_for(
        "the bot's answer in kf/send_msg",
        lambda: [r for r in kf_replies(rasa_stack, COMPLAINER) if str(ticket.id) in r],
    )
    assert any("投诉编号" in r for r in replies)


def test_an_order_the_guest_cancels_pages_no_more(rasa_stack, stores):
    crm, paging = stores
    sender = f"kf:{ORDERER}"
    crm.get_or_create_guest(sender, name="周宁（测试）", kf_external_userid=ORDERER)
    today = china_today()
    crm.add_booking(
        sender,
        property_id="sanya-haitang-resort",
        city="三亚",
        check_in=today + dt.timedelta(days=1),
        check_out=today + dt.timedelta(days=4),
        room_type="海景大床房",
        purpose="度假",
        party_size=2,
    )

    guest_says(rasa_stack, ORDERER, "帮我订明天早上8点的接机，航班号CA1234，我们两个人")
    wait_for(
        "the order summary", lambda: [r for r in kf_replies(rasa_stack, ORDERER) if "CA1234" in r]
    )
    guest_says(rasa_stack, ORDERER, "确认")
    order = wait_for("the order in the CRM", lambda: next(iter(crm.orders(sender)), None))
    case = wait_for("the order's clock", lambda: paging.clock_for("order", order.id))
    wait_for(
        "the order's page", lambda: [m for m in app_messages(rasa_stack) if about_case(m, case.id)]
    )

    guest_says(rasa_stack, ORDERER, f"取消订单{order.id}")
    wait_for("the order cancelled", lambda: crm.order(order.id).status == "cancelled")
    wait_for("the clock cancelled", lambda: paging.clock(case.id).state == "cancelled")
    notes = wait_for(
        "the advisor told once",
        lambda: [
            m
            for m in app_messages(rasa_stack)
            if about_case(m, case.id)
            and m["body"]["msgtype"] == "text"
            and "取消" in m["body"]["text"]["content"]
        ],
    )
    assert len(notes) == 1
    seen = len([m for m in app_messages(rasa_stack) if about_case(m, case.id)])
    # past the re-page (5 s), the acknowledgement deadline (10 s) and then some
    time.sleep(16)
    after = [m for m in app_messages(rasa_stack) if about_case(m, case.id)]
    assert len(after) == seen, [m["body"] for m in after[seen:]]
    assert not [s.step for s in paging.steps(case.id) if s.status in ("pending", "firing")]
    # and the guest got no "sorry for the wait"
    assert not any("久等" in r for r in kf_replies(rasa_stack, ORDERER))

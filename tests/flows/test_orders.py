"""The add-on order form through its actions, with what lands in the CRM read back from the
database (a fresh store, as another process or a restarted action server would see it)."""

from __future__ import annotations

import datetime as dt

import pytest

from actions.orders import (
    ActionAskAddonItem,
    ActionAskFlightNo,
    ActionAskOrderConfirm,
    ActionAskOrderWhen,
    ActionAskPartySize,
    ActionCancelOrder,
    ActionCancelOrderForm,
    ActionOrderStatus,
    ActionSubmitOrder,
    ValidateAddonOrderForm,
)
from bot.orders.when import CHINA_TZ, china_now

from .helpers import FormPlayer, domain, promised, run, tracker

ASK = {
    "addon_item": ActionAskAddonItem(),
    "order_when": ActionAskOrderWhen(),
    "party_size": ActionAskPartySize(),
    "flight_no": ActionAskFlightNo(),
    "order_confirm": ActionAskOrderConfirm(),
}


def player(sender: str) -> FormPlayer:
    return FormPlayer(sender, "addon_order_form", ValidateAddonOrderForm(), ASK)


def tomorrow_at(hour: int, minute: int = 0) -> dt.datetime:
    day = china_now().date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour, minute), CHINA_TZ)


def new_orders(store, sender):
    """Orders the conversation made (the demo file gives demo-lin one confirmed pickup already)."""
    return [o for o in store.orders(sender) if o.status != "confirmed" or o.flight_no != "HU7081"]


async def submit(p: FormPlayer):
    return await p.run_action(ActionSubmitOrder())


# ---- happy paths -------------------------------------------------------------------------------


async def test_everything_in_one_message_then_confirm(services, fresh_store):
    p = player("demo-lin")
    said = await p.say("帮我订明早八点的接机，航班号CA1234，我们两个人", "order_addon")
    assert p.slots["addon_item"] == "airport_pickup"
    assert dt.datetime.fromisoformat(p.slots["order_when"]) == tomorrow_at(8)
    assert p.slots["party_size"] == 2 and p.slots["flight_no"] == "CA1234"
    assert p.slots["requested_slot"] == "order_confirm"
    summary = said[-1]
    assert "接机" in summary and "08:00" in summary and "CA1234" in summary
    assert "¥300" in summary  # the catalogue's price, said as the catalogue says it
    # demo-lin already has a confirmed pickup that day (demo data): the summary reminds her
    assert "您已经有一单接机" in summary and "已确认" in summary

    await p.say("确认", "affirm")
    assert p.slots["order_confirm"] is True and p.slots["requested_slot"] is None
    messages, events = await submit(p)
    assert "订单号" in messages[0]  # and who acts by when, from the SLA policy:
    assert all(d in messages[0] for d in promised("addon_order"))

    orders = new_orders(fresh_store, "demo-lin")
    assert len(orders) == 1
    order = orders[0]
    assert (order.item, order.status, order.sla_class) == ("接机", "requested", "addon_order")
    assert order.scheduled_at == tomorrow_at(8)
    assert (order.party_size, order.flight_no) == (2, "CA1234")
    assert order.booking_id == fresh_store.upcoming_bookings("demo-lin")[0].id
    assert all(e["value"] is None for e in events if e["event"] == "slot")  # the form is reset


async def test_step_by_step(services, fresh_store):
    p = player("demo-lin")
    said = await p.say("我想做个SPA", "order_addon")
    assert p.slots["addon_item"] == "spa" and p.slots["requested_slot"] == "order_when"
    assert "SPA" in said[-1]
    await p.say("后天下午三点", "inform")
    assert p.slots["requested_slot"] == "party_size"
    await p.say("2", "inform")  # a bare number right after "几位？"
    assert p.slots["party_size"] == 2
    assert p.slots["requested_slot"] == "order_confirm"  # no flight number for a spa
    await p.say("好的", "affirm")
    await submit(p)
    [order] = new_orders(fresh_store, "demo-lin")
    assert order.item == "SPA" and order.flight_no is None and order.party_size == 2
    assert order.scheduled_at.astimezone(CHINA_TZ).hour == 15


async def test_a_day_first_then_the_time(services, fresh_store):
    p = player("demo-lin")
    said = await p.say("明天帮我订个生日蛋糕", "order_addon")
    assert p.slots["order_when"] is None and p.slots["order_day"]
    assert "几点" in said[-1]
    await p.say("下午5点", "inform")
    assert dt.datetime.fromisoformat(p.slots["order_when"]) == tomorrow_at(17)


# ---- corrections, notes, digressions -----------------------------------------------------------


async def test_correction_at_the_confirmation(services, fresh_store):
    p = player("demo-lin")
    await p.say("明早八点接机，航班CA1234，2个人", "order_addon")
    said = await p.say("不对，改成3个人", "inform")
    assert p.slots["party_size"] == 3
    assert p.slots["requested_slot"] == "order_confirm" and "3位" in said[-1]
    said = await p.say("时间改成明天早上9点半", "inform")
    assert dt.datetime.fromisoformat(p.slots["order_when"]) == tomorrow_at(9, 30)
    assert "09:30" in said[-1]
    await p.say("确认", "affirm")
    await submit(p)
    [order] = new_orders(fresh_store, "demo-lin")
    assert order.party_size == 3 and order.scheduled_at == tomorrow_at(9, 30)


async def test_a_note_at_the_confirmation_goes_on_the_order(services, fresh_store):
    p = player("demo-lin")
    await p.say("明早八点接机，航班CA1234，2个人", "order_addon")
    said = await p.say("需要一个儿童安全座椅", "inform")
    assert p.slots["order_notes"] == "需要一个儿童安全座椅"
    assert "备注：需要一个儿童安全座椅" in said[-1]
    await p.say("确认", "affirm")
    await submit(p)
    [order] = new_orders(fresh_store, "demo-lin")
    assert order.notes == "需要一个儿童安全座椅"


async def test_a_question_in_the_middle_is_left_to_the_rules(services, fresh_store):
    p = player("demo-lin")
    await p.say("帮我订个接机", "order_addon")
    assert p.slots["requested_slot"] == "order_when"
    # "明天早餐几点": has a day in it, but it is a question aside, not the pickup time
    await p.say("明天早餐几点开始", "ask_amenity")
    changed = {e["name"] for e in p.last_events if e["event"] == "slot"} - {"requested_slot"}
    assert changed == set()  # nothing extracted: Rasa rejects the form, the rules answer
    assert p.slots.get("order_when") is None
    await p.say("明早8点到，航班HU7081，我们俩", "inform")  # back to the form
    assert p.filled(["order_when", "party_size", "flight_no"])


# ---- giving up ---------------------------------------------------------------------------------


async def test_cancel_in_the_middle_orders_nothing(services, fresh_store):
    p = player("demo-lin")
    await p.say("帮我订个接机", "order_addon")
    messages, events = await p.run_action(ActionCancelOrderForm())
    assert "没有为您下单" in messages[0]
    assert any(e["event"] == "active_loop" and e["name"] is None for e in events)
    assert new_orders(fresh_store, "demo-lin") == []


async def test_declined_at_the_confirmation_orders_nothing(services, fresh_store):
    p = player("demo-lin")
    await p.say("明早八点接机，航班CA1234，2个人", "order_addon")
    await p.say("算了", "deny")
    assert p.slots["order_confirm"] is False and p.slots["requested_slot"] is None
    messages, _ = await submit(p)
    assert "先不提交" in messages[0]
    assert new_orders(fresh_store, "demo-lin") == []


# ---- bad input ---------------------------------------------------------------------------------


async def test_a_time_in_the_past_is_refused(services):
    p = player("demo-lin")
    said = await p.say("昨天下午三点的SPA", "order_addon")
    assert p.slots["order_when"] is None
    assert any("已经过去了" in m for m in said)


@pytest.mark.parametrize("party, expected", [("0个人", "至少是1位"), ("200个人", "最多6位")])
async def test_party_of_zero_or_two_hundred_is_refused(services, party, expected):
    p = player("demo-lin")
    said = await p.say(f"明早八点接机，航班CA1234，{party}", "order_addon")
    assert p.slots["party_size"] is None
    assert any(expected in m for m in said)
    assert p.slots["requested_slot"] == "party_size"


async def test_spa_when_it_is_closed(services):
    p = player("demo-lin")
    said = await p.say("明天晚上11点半做SPA", "order_addon")
    assert p.slots["order_when"] is None
    assert any("10:00–23:00" in m and "23:30" in m for m in said)


async def test_an_item_the_property_does_not_offer(services, shanghai_guest):
    p = player(shanghai_guest)
    said = await p.say("帮我订个SPA", "order_addon")
    assert p.slots["addon_item"] is None
    assert any("上海外滩云栖酒店暂不提供SPA" in m for m in said)
    assert p.slots["requested_slot"] == "addon_item"
    said = await p.say("那订个晚餐的位子，后天晚上7点，4位", "inform")
    assert p.slots["addon_item"] == "restaurant_booking"


async def test_a_day_outside_the_stay(services):
    p = player("demo-lin")
    said = await p.say("下个月15号早上8点接机", "order_addon")
    assert p.slots["order_when"] is None
    assert any("不在行程内" in m and "到达当天" in m for m in said)


async def test_a_bad_flight_number_is_asked_again(services):
    p = player("demo-lin")
    await p.say("明早八点接机，2个人", "order_addon")
    assert p.slots["requested_slot"] == "flight_no"
    said = await p.say("不知道啊", "inform")
    assert p.slots["flight_no"] is None and any("CA1234" in m for m in said)
    await p.say("ca 1234", "inform")
    assert p.slots["flight_no"] == "CA1234"


async def test_no_booking_ends_the_form_without_an_order(services, fresh_store):
    p = player("demo-zhao")
    said = await p.say("帮我订个接机", "order_addon")
    assert p.slots["order_stop_reason"] == "no_booking" and p.slots["requested_slot"] is None
    assert any("没有查到" in m for m in said)
    messages, _ = await submit(p)
    assert messages == []
    assert fresh_store.orders("demo-zhao") == []


# ---- after the order ---------------------------------------------------------------------------


async def test_status_then_cancel(services, fresh_store):
    p = player("demo-lin")
    await p.say("后天下午三点做SPA，2位", "order_addon")
    await p.say("确认", "affirm")
    await submit(p)
    [order] = new_orders(fresh_store, "demo-lin")

    messages, _ = await run(
        ActionOrderStatus(), tracker("demo-lin", "我的订单怎么样了", "ask_order_status")
    )
    assert f"订单号 {order.id}" in messages[0] and "等待确认" in messages[0]

    messages, _ = await run(
        ActionCancelOrder(), tracker("demo-lin", "把SPA取消了吧", "cancel_order")
    )
    assert "已为您取消SPA" in messages[0]
    assert fresh_store.order(order.id).status == "cancelled"
    # the demo's confirmed pickup is untouched
    assert any(o.status == "confirmed" for o in fresh_store.orders("demo-lin"))


async def test_cancel_with_two_open_orders_asks_which(services, fresh_store):
    p = player("demo-lin")
    await p.say("明早八点接机，航班CA1234，2个人", "order_addon")
    await p.say("确认", "affirm")
    await submit(p)
    messages, _ = await run(ActionCancelOrder(), tracker("demo-lin", "取消接机", "cancel_order"))
    assert "要取消哪一个" in messages[0]
    assert all(o.status != "cancelled" for o in fresh_store.orders("demo-lin"))


def test_order_actions_are_in_the_domain():
    names = set(domain()["actions"])
    for action in [
        *ASK.values(),
        ValidateAddonOrderForm(),
        ActionSubmitOrder(),
        ActionCancelOrderForm(),
        ActionOrderStatus(),
        ActionCancelOrder(),
    ]:
        assert action.name() in names


async def test_a_correction_while_the_flight_is_asked_is_not_a_bad_flight(services):
    p = player("demo-lin")
    await p.say("明早八点接机，两个人", "order_addon")
    assert p.slots["requested_slot"] == "flight_no"
    said = await p.say("改成3个人", "inform")
    assert p.slots["party_size"] == 3 and p.slots.get("flight_no") is None
    assert not any("不太对" in m for m in said)


async def test_a_pickup_the_evening_before_check_in_is_an_arrival(services):
    store = services.store
    store.get_or_create_guest("eve")
    tomorrow = china_now().date() + dt.timedelta(days=1)
    store.add_booking(
        "eve",
        property_id="sanya-haitang-resort",
        city="三亚",
        check_in=tomorrow + dt.timedelta(days=1),
        check_out=tomorrow + dt.timedelta(days=3),
    )
    r = player("eve")
    said = await r.say("明早八点接机，航班CA1234，两个人", "order_addon")
    assert r.slots["order_when"] is None and any("到达当天" in m for m in said)
    await r.say("明晚十一点", "inform")
    assert dt.datetime.fromisoformat(r.slots["order_when"]) == tomorrow_at(23)


async def test_a_complaint_interrupting_the_form_says_nothing_before_the_empathy(services):
    p = player("demo-lin")
    await p.say("帮我订个接机", "order_addon")
    t = tracker("demo-lin", "房间好臭", "complain", slots=p.slots, active_loop="addon_order_form")
    messages, events = await run(ActionCancelOrderForm(), t)
    assert messages == []
    assert all(e["value"] is None for e in events if e["event"] == "slot")

"""The identity-linking form through its actions, against the demo CRM: happy path, a wrong
second factor, three failures, both at once, giving up."""

from __future__ import annotations

from actions.identity import (
    ActionAskLinkClaim,
    ActionAskLinkProof,
    ActionLinkGiveUp,
    ActionLinkSubmit,
    ValidateLinkIdentityForm,
)

from .helpers import FormPlayer, run, slot_events, tracker

ASK = {"link_claim": ActionAskLinkClaim(), "link_proof": ActionAskLinkProof()}


def player(sender: str) -> FormPlayer:
    return FormPlayer(sender, "link_identity_form", ValidateLinkIdentityForm(), ASK)


async def submit(p: FormPlayer) -> str:
    messages, events = await p.run_action(ActionLinkSubmit())
    assert slot_events(events)["link_outcome"] is None  # ready for another time
    return "\n".join(messages)


async def test_booking_number_then_last_four(services):
    p = player("kf:wm_form_1")
    asked = await p.say("订单号 DEMO-LIN-001", "link_booking")
    assert "后四位" in asked[-1]
    await p.say("尾号0001", "link_booking")
    assert p.slots["link_outcome"] == "linked" and not p.active
    said = await submit(p)
    assert "核对成功" in said and "三亚" in said
    assert services.store.upcoming_bookings("kf:wm_form_1")[0].confirmation_no == "DEMO-LIN-001"


async def test_both_at_once_and_phone_with_date(services):
    p = player("kf:wm_form_2")
    await p.say("订单号DEMO-LIN-001，手机尾号0001", "link_booking")
    assert p.slots["link_outcome"] == "linked"
    q = player("kf:wm_form_3")
    asked = await q.say("手机号 13800000001", "link_booking")
    assert "订单号" in asked[-1] and "入住日期" in asked[-1]
    await q.say("DEMO-LIN-001", "link_booking")
    assert q.slots["link_outcome"] == "linked"


async def test_a_wrong_factor_says_the_same_either_way_then_three_lock(services):
    p = player("kf:wm_form_4")
    await p.say("订单号 DEMO-LIN-001", "link_booking")
    wrong = await p.say("尾号9999", "link_booking")
    assert "没有核对上" in wrong[0] and "2次" in wrong[0]
    assert "订单号" in wrong[-1]  # asked again from the start
    await p.say("订单号 NO-SUCH-001", "link_booking")
    unknown = await p.say("尾号0001", "link_booking")  # a number we do not have: same words
    assert "没有核对上" in unknown[0] and "1次" in unknown[0]
    await p.say("订单号DEMO-LIN-001，手机尾号1111", "link_booking")
    assert p.slots["link_outcome"] == "locked" and not p.active
    said = await submit(p)
    assert "暂停" in said and "转人工" in said
    # Locked: even the right pair is refused now.
    again = player("kf:wm_form_4")
    await again.say("订单号DEMO-LIN-001，手机尾号0001", "link_booking")
    assert again.slots["link_outcome"] == "locked"
    assert services.store.upcoming_bookings("kf:wm_form_4") == []


async def test_giving_up_ends_the_form_politely(services):
    p = player("kf:wm_form_5")
    await p.say("手机号13800000001", "link_booking")
    messages, events = await run(
        ActionLinkGiveUp(),
        tracker(
            "kf:wm_form_5", "算了不用了", "deny", slots=p.slots, active_loop="link_identity_form"
        ),
    )
    assert "没关系" in messages[0]
    assert {"event": "active_loop", "name": None} in [
        {k: e.get(k) for k in ("event", "name")} for e in events
    ]
    assert slot_events(events)["link_claim"] is None

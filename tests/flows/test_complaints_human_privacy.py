"""Complaints, a human on request (and after two fallbacks), privacy requests and praise: the
actions, and the records they leave in the CRM (read back from a fresh store)."""

from __future__ import annotations

import pytest

from actions.complaints import (
    ActionAskComplaintLocation,
    ActionAskComplaintSince,
    ActionComplaintEscalate,
    ActionComplaintTriage,
    ActionRecordPraise,
    ActionSubmitComplaint,
    ValidateComplaintForm,
)
from actions.human import ActionHandleFallback, ActionRequestHuman
from actions.privacy import ActionRequestDataDeletion, ActionUnsubscribe
from bot.complaints.classifier import ComplaintClassifier

from .helpers import FormPlayer, domain, promised, run, slot_events, tracker, user_event

# Words the bot must never say to a complaining guest: no promises of money, no arguing.
FORBIDDEN = ("退款", "赔偿", "补偿您", "免单", "不可能", "您误会", "不是我们的问题")


@pytest.fixture(scope="module")
def classifier():
    return ComplaintClassifier()


@pytest.mark.parametrize(
    "text, category, severity, nature",
    [
        ("房间里一股很重的烟味", "hygiene", "routine", "service_failure"),
        ("隔壁装修太吵了", "noise", "routine", "service_failure"),
        ("房间和图片不一样，根本看不到海", "not_as_pictured", "routine", "service_failure"),
        ("导游迟到了一个小时", "guide_late", "routine", "service_failure"),
        ("行程缩水，少了一个景点", "itinerary_cut", "routine", "service_failure"),
        ("前台态度很差", "staff", "routine", "service_failure"),
        ("账单多收了300", "billing", "routine", "service_failure"),
        ("孩子在泳池摔倒受伤了", "safety", "major", "service_failure"),
        ("航班取消了，回不去了", "force_majeure_event", "major", "force_majeure"),
        ("我的护照丢了", "lost_item", "major", "service_failure"),
        ("台风天出不了海，行程怎么办", "force_majeure_event", "routine", "force_majeure"),
    ],
)
def test_classification(classifier, text, category, severity, nature):
    c = classifier.classify(text)
    assert (c.category, c.severity, c.nature) == (category, severity, nature)


def test_where_and_since_come_from_the_first_message(classifier):
    c = classifier.classify("我们1208房烟味很重，从昨晚就这样")
    assert c.location == "1208房间" and c.since == "从昨晚"


def player(sender):
    return FormPlayer(
        sender,
        "complaint_form",
        ValidateComplaintForm(),
        {
            "complaint_location": ActionAskComplaintLocation(),
            "complaint_since": ActionAskComplaintSince(),
        },
    )


async def triage(sender, text):
    messages, events = await run(ActionComplaintTriage(), tracker(sender, text, "complain"))
    return messages, slot_events(events)


async def test_routine_complaint_opens_its_ticket_with_the_first_message(services, fresh_store):
    messages, slots = await triage("demo-lin", "房间里一股很重的烟味")
    assert messages[0].startswith("非常抱歉")  # empathy first
    text = " ".join(messages)
    assert "投诉编号" in text  # who acts, and by when, at once:
    assert promised("complaint_routine") and all(d in text for d in promised("complaint_routine"))
    assert not any(word in text for word in FORBIDDEN)
    # the ticket (and so the SLA clock, which the worker starts from it) exists before any answer
    [ticket] = fresh_store.tickets("demo-lin")
    assert (ticket.kind, ticket.category, ticket.severity, ticket.nature, ticket.sla_class) == (
        "complaint",
        "hygiene",
        "routine",
        "service_failure",
        "complaint_routine",
    )
    assert ticket.description == "房间里一股很重的烟味" and ticket.location == "房间"
    assert ticket.since_text is None and f"投诉编号 {ticket.id}" in text
    assert ticket.booking_id == fresh_store.upcoming_bookings("demo-lin")[0].id
    assert slots["complaint_route"] == "ask_details"
    assert slots["complaint_location"] == "房间"  # said already: not asked again

    p = player("demo-lin")
    p.slots.update(slots)
    await p.say("从昨天晚上入住就有", "inform")
    assert p.slots["complaint_since"]
    messages, _ = await p.run_action(ActionSubmitComplaint())
    assert f"投诉 {ticket.id}" in " ".join(messages)
    [enriched] = fresh_store.tickets("demo-lin")  # the same ticket, with the answer added
    assert enriched.id == ticket.id and "昨天" in enriched.since_text
    assert enriched.location == "房间"


async def test_a_guest_who_goes_quiet_after_complaining_still_has_a_ticket(services, fresh_store):
    """The review's case: one message through 微信客服, then nothing."""
    _, slots = await triage(
        "kf:wm_quiet", "你们的房间太脏了，床单上有头发，卫生间也有异味，我很生气"
    )
    [ticket] = fresh_store.tickets("kf:wm_quiet")
    assert ticket.status == "open" and ticket.sla_class == "complaint_routine"


async def test_the_form_asks_where_when_it_was_not_said(services, fresh_store):
    _, slots = await triage("demo-lin", "隔壁太吵了")
    assert slots["complaint_location"] is None
    [opened] = fresh_store.tickets("demo-lin")
    assert opened.location is None
    p = player("demo-lin")
    p.slots.update(slots)
    await p.say("1206房", "inform")
    assert p.slots["complaint_location"] == "1206房间"
    await p.say("不记得了", "inform")
    assert p.slots["complaint_since"] == "不清楚"
    messages, _ = await p.run_action(ActionSubmitComplaint())
    [ticket] = fresh_store.tickets("demo-lin")
    assert ticket.id == opened.id and ticket.category == "noise"
    assert ticket.location == "1206房间" and ticket.since_text is None  # "don't know" is not a fact
    assert f"投诉 {ticket.id}" in " ".join(messages)


async def test_major_incident_goes_straight_to_a_person(services, fresh_store):
    messages, slots = await triage("demo-lin", "我老公在泳池摔倒受伤了，流了很多血")
    assert slots["complaint_route"] == "handed_off"
    text = " ".join(messages)
    assert "120" in text and all(d in text for d in promised("complaint_major"))
    assert not any(word in text for word in FORBIDDEN)
    [ticket] = fresh_store.tickets("demo-lin")
    assert (ticket.severity, ticket.sla_class) == ("major", "complaint_major")
    [handoff] = fresh_store.handoffs("demo-lin")
    assert (handoff.reason, handoff.sla_class, handoff.status) == (
        "major_incident",
        "human_request",
        "requested",
    )


async def test_strong_anger_gets_a_person_without_more_questions(services, fresh_store):
    messages, slots = await triage("demo-lin", "什么破酒店，房间脏死了，气死我了！！！")
    assert slots["complaint_route"] == "handed_off"
    assert not any(word in " ".join(messages) for word in FORBIDDEN)
    [ticket] = fresh_store.tickets("demo-lin")
    assert (ticket.category, ticket.severity, ticket.sla_class) == (
        "hygiene",
        "routine",
        "complaint_routine",
    )
    assert [h.reason for h in fresh_store.handoffs("demo-lin")] == ["anger"]


async def test_a_person_asked_for_in_the_middle_of_the_complaint(services, fresh_store):
    _, slots = await triage("demo-lin", "早餐太差了")
    t = tracker("demo-lin", "转人工", "request_human", slots=slots, active_loop="complaint_form")
    messages, events = await run(ActionComplaintEscalate(), t)
    assert "不用再从头说" in messages[0]
    assert any(e["event"] == "active_loop" and e["name"] is None for e in events)
    [ticket] = fresh_store.tickets("demo-lin")  # one ticket: the one the first message opened
    assert ticket.description == "早餐太差了" and ticket.category == "breakfast"
    assert f"投诉编号 {ticket.id}" in messages[0]
    assert [h.reason for h in fresh_store.handoffs("demo-lin")] == ["complaint"]


async def test_request_human_once_even_when_asked_twice(services, fresh_store):
    messages, _ = await run(ActionRequestHuman(), tracker("demo-lin", "转人工", "request_human"))
    assert all(d in messages[0] for d in promised("human_request"))
    messages, _ = await run(
        ActionRequestHuman(), tracker("demo-lin", "人呢？我要找真人", "request_human")
    )
    assert "已经在为您安排" in messages[0]
    [handoff] = fresh_store.handoffs("demo-lin")
    assert (handoff.reason, handoff.sla_class) == ("request_human", "human_request")


async def test_two_fallbacks_in_a_row_bring_a_person(services, fresh_store):
    first = user_event("啊吧啊吧", "nlu_fallback")
    bot = {"event": "bot", "text": "抱歉，我没太明白"}
    messages, events = await run(
        ActionHandleFallback(), tracker("demo-lin", "啊吧啊吧", "nlu_fallback")
    )
    assert messages == [] and slot_events(events) == {"fallback_route": "rephrase"}
    assert fresh_store.handoffs("demo-lin") == []

    messages, events = await run(
        ActionHandleFallback(),
        tracker("demo-lin", "嗯嗯那个啥", "nlu_fallback", events=[first, bot]),
    )
    assert slot_events(events) == {"fallback_route": "handed_off"}
    assert "人工顾问" in " ".join(messages)
    assert [h.reason for h in fresh_store.handoffs("demo-lin")] == ["fallback"]


async def test_an_understood_message_between_fallbacks_resets_the_count(services, fresh_store):
    history = [user_event("啊吧", "nlu_fallback"), user_event("早餐几点", "ask_amenity")]
    _, events = await run(
        ActionHandleFallback(), tracker("demo-lin", "嗯那个", "nlu_fallback", events=history)
    )
    assert slot_events(events) == {"fallback_route": "rephrase"}
    assert fresh_store.handoffs("demo-lin") == []


async def test_unsubscribe_stops_marketing_at_once(services, fresh_store):
    assert fresh_store.has_consent("demo-lin", "marketing")
    messages, _ = await run(ActionUnsubscribe(), tracker("demo-lin", "别再给我发了", "unsubscribe"))
    assert "退订" in messages[0] and "不受影响" in messages[0]
    assert not fresh_store.has_consent("demo-lin", "marketing")
    assert fresh_store.consents("demo-lin")[-1].source == "guest_message"
    assert fresh_store.audit_entries(action="consent.withdraw", subject_id="demo-lin")


async def test_deletion_request_opens_one_verified_ticket(services, fresh_store):
    messages, _ = await run(
        ActionRequestDataDeletion(),
        tracker("demo-lin", "把我的个人信息都删掉", "request_data_deletion"),
    )
    assert "核实" in messages[0] and all(d in messages[0] for d in promised("data_deletion", None))
    [ticket] = fresh_store.tickets("demo-lin")
    assert (ticket.kind, ticket.sla_class, ticket.status) == (
        "data_deletion",
        "data_deletion",
        "open",
    )
    assert not fresh_store.has_consent("demo-lin", "marketing")
    assert fresh_store.find_guest("demo-lin") is not None  # nothing deleted before verification

    messages, _ = await run(
        ActionRequestDataDeletion(), tracker("demo-lin", "删除我的数据", "request_data_deletion")
    )
    assert "已经在处理中" in messages[0]
    assert len(fresh_store.tickets("demo-lin")) == 1


async def test_praise_is_thanked_and_recorded(services, fresh_store):
    messages, _ = await run(
        ActionRecordPraise(), tracker("demo-lin", "你们服务太贴心了，点赞", "praise")
    )
    assert "谢谢" in messages[0]
    [feedback] = fresh_store.feedback("demo-lin")
    assert (feedback.kind, feedback.text) == ("praise", "你们服务太贴心了，点赞")


def test_these_actions_are_in_the_domain():
    names = set(domain()["actions"])
    for action in (
        ActionComplaintTriage(),
        ValidateComplaintForm(),
        ActionSubmitComplaint(),
        ActionComplaintEscalate(),
        ActionAskComplaintLocation(),
        ActionAskComplaintSince(),
        ActionRecordPraise(),
        ActionRequestHuman(),
        ActionHandleFallback(),
        ActionUnsubscribe(),
        ActionRequestDataDeletion(),
    ):
        assert action.name() in names

"""The NLU inbox is filled by a cursor from the conversation events (Rasa's events as its event
broker publishes them, stored by bot.events) and, without a broker, from Rasa's SQL tracker
store: every test runs on both."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from bot.training.collector import InboxCollector
from bot.training.inbox import InboxService, erase_sender
from tests.training.conftest import HASH_KEY, EventStreamBroker, Trackers


@pytest.fixture(params=["events", "tracker"])
def trackers(request, crm, tmp_path):
    """Conversations saved through Rasa's SQLTrackerStore; with "events" its event broker also
    publishes every new event into the CRM's conversation_events, which the collector reads."""
    if request.param == "events":
        return Trackers(tmp_path / "tracker.db", EventStreamBroker(crm.engine), "events")
    return Trackers(tmp_path / "tracker.db")


def collector(crm, trackers, **kw):
    source = None if trackers.source == "events" else trackers.url
    return InboxCollector(
        crm.engine, source, hash_key=HASH_KEY, low_confidence=0.5, rephrase_window_s=120, **kw
    )


def inbox(crm):
    return InboxService(crm.engine, crm)


def by_text(items):
    return {i["text"]: i for i in items}


def test_fallback_low_confidence_rephrase_handoff_and_takeover_are_collected(crm, trackers):
    t = trackers
    # fallback, then a rephrase of it the bot understood
    t.save(
        "kf:guest-a",
        [
            t.user(
                "能不能帮我弄个婴儿床到房间",
                "nlu_fallback",
                0.2,
                [("order_addon", 0.31), ("ask_amenity", 0.22)],
            ),
            t.bot("抱歉，我没太明白，能换个说法吗？"),
            t.user("能帮我在房间加一张婴儿床吗", "order_addon", 0.81, after=20),
            t.bot("好的，已为您登记加床。"),
        ],
    )
    # low confidence, answered confidently elsewhere
    t.save(
        "kf:guest-b",
        [
            t.user(
                "你们那边有没有可以遛狗的草坪",
                "ask_amenity",
                0.41,
                [("ask_amenity", 0.41), ("ask_directions", 0.30)],
            ),
            t.bot("酒店有宠物友好区。"),
            t.user("好的谢谢", "thank", 0.95),
        ],
    )
    # handoff: the guest gives up on a confident but wrong answer and asks for a person
    t.save(
        "kf:guest-c",
        [
            t.user("退房后行李能寄存到晚上吗", "ask_checkout_time", 0.72),
            t.bot("退房时间是中午12点。"),
            t.user("转人工", "request_human", 0.97, after=15),
            t.action("action_request_human"),
            t.bot("好的，已为您转接人工顾问。"),
        ],
    )
    # takeover: the bot answered, then an advisor took the conversation over
    t.save(
        "kf:guest-d",
        [
            t.user("我想把明天的接机改到后天", "ask_order_status", 0.66),
            t.bot("您的接机订单已确认。"),
            t.pause(),
        ],
    )
    # understood: nothing to collect
    t.save(
        "kf:guest-e",
        [t.user("明天三亚天气怎么样", "ask_weather", 0.93), t.bot("明天三亚晴，28度。")],
    )

    c = collector(crm, trackers)
    assert c.collect_all() > 0
    items = by_text(inbox(crm).items())
    assert set(items) == {
        "能不能帮我弄个婴儿床到房间",
        "你们那边有没有可以遛狗的草坪",
        "退房后行李能寄存到晚上吗",
        "我想把明天的接机改到后天",
    }
    fb = items["能不能帮我弄个婴儿床到房间"]
    assert fb["reasons"] == {"fallback": 1, "rephrase": 1}
    assert fb["predicted"] == "nlu_fallback"
    assert fb["alternatives"][0] == ["order_addon", 0.31]
    assert items["你们那边有没有可以遛狗的草坪"]["reasons"] == {"low_confidence": 1}
    assert items["退房后行李能寄存到晚上吗"]["reasons"] == {"handoff": 1}
    assert items["我想把明天的接机改到后天"]["reasons"] == {"takeover": 1}

    detail = inbox(crm).item(fb["id"])
    assert [(c["who"], c["text"]) for c in detail["context"]] == [
        ("guest", "能不能帮我弄个婴儿床到房间"),
        ("bot", "抱歉，我没太明白，能换个说法吗？"),
        ("guest", "能帮我在房间加一张婴儿床吗"),
        ("bot", "好的，已为您登记加床。"),
    ]
    assert detail["context"][0]["this"] is True
    # nothing identifies the guest
    assert "guest-a" not in json.dumps(detail, ensure_ascii=False)

    # the cursor: a second pass reads nothing and files nothing new
    assert c.collect_all() == 0
    assert len(inbox(crm).items()) == 4


def test_fallback_handoff_after_two_misses_adds_the_reason(crm, trackers):
    t = trackers
    t.save(
        "kf:g",
        [
            t.user("那个东西怎么弄啊到底", "nlu_fallback", 0.1),
            t.bot("抱歉？"),
            t.user("就是上次说的那个呀", "nlu_fallback", 0.1, after=10),
            t.action("action_handle_fallback"),
            t.slot("fallback_route", "handed_off"),
        ],
    )
    collector(crm, trackers).collect_all()
    items = by_text(inbox(crm).items())
    assert items["就是上次说的那个呀"]["reasons"] == {"fallback": 1, "handoff": 1}
    assert items["那个东西怎么弄啊到底"]["reasons"] == {"fallback": 1}


def test_near_identical_texts_are_one_item_with_a_count(crm, trackers):
    t = trackers
    for i, text_ in enumerate(
        ["房间的WIFI老是断！！", "房间的wifi 老是断", "房間的wifi老是斷", "房间的wifi老是断啊"]
    ):
        t.save(f"kf:dup-{i}", [t.user(text_, "nlu_fallback", 0.2, after=600), t.bot("抱歉？")])
    t.save("kf:other", [t.user("早餐几点结束", "nlu_fallback", 0.2, after=600)])
    collector(crm, trackers).collect_all()
    items = inbox(crm).items()
    assert [(i["text"], i["count"]) for i in items] == [
        ("房间的wifi老是断!!", 4),
        ("早餐几点结束", 1),
    ]
    assert "房间的wifi老是断啊" in items[0]["variants"]


def test_personal_numbers_are_masked_and_low_confidence_is_configurable(crm, trackers):
    t = trackers
    t.save("kf:p", [t.user("我电话13812345678，帮我改一下", "inform", 0.6), t.bot("好的")])
    strict = collector(crm, trackers, source="strict")
    strict.low_confidence = 0.7
    strict.collect_all()
    assert [i["text"] for i in inbox(crm).items()] == ["我电话138****5678,帮我改一下"]


def test_slash_payloads_and_a_damaged_event_row_are_skipped(crm, trackers):
    if trackers.source == "events":
        pytest.skip("a damaged delivery never reaches conversation_events (tests/events)")
    t = trackers
    t.save("kf:x", [t.user('/choose_stay{"booking_id": 3}', "nlu_fallback", 0.1)])
    engine = create_engine(trackers.url, future=True)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (sender_id, type_name, timestamp, data) "
                "VALUES ('kf:x', 'user', 1.0, '{not json')"
            )
        )
    engine.dispose()
    assert collector(crm, trackers).collect_all() == 2
    assert inbox(crm).items() == []


def test_erasing_a_guest_removes_their_messages_from_the_inbox(crm, trackers):
    t = trackers
    t.save("kf:erase-me", [t.user("泳池能带小孩去吗啊", "nlu_fallback", 0.2)])
    t.save("kf:stay", [t.user("泳池能带小孩去吗", "nlu_fallback", 0.2, after=300)])
    t.save("kf:erase-me", [t.user("健身房要预约吗我想知道", "nlu_fallback", 0.2, after=300)])
    collector(crm, trackers).collect_all()
    assert {i["text"]: i["count"] for i in inbox(crm).items()} == {
        "泳池能带小孩去吗啊": 2,
        "健身房要预约吗我想知道": 1,
    }
    assert erase_sender(crm.engine, "kf:erase-me", HASH_KEY) == 2
    assert {i["text"]: i["count"] for i in inbox(crm).items()} == {"泳池能带小孩去吗": 1}
    assert erase_sender(crm.engine, "kf:nobody", HASH_KEY) == 0


def test_an_unreachable_tracker_store_is_an_error_and_the_cursor_stays(crm, tmp_path):
    c = InboxCollector(crm.engine, f"sqlite:///{tmp_path / 'missing' / 'x.db'}", hash_key=HASH_KEY)
    with pytest.raises(Exception):
        c.collect_once()
    with crm.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM nlu_inbox_cursor")).scalar() == 0


def test_concierge_guest_erasure_removes_the_guests_inbox_messages(crm, trackers):
    from bot.erasure import GuestEraser

    t = trackers
    t.save("kf:leaving", [t.user("那个叫什么来着的服务", "nlu_fallback", 0.2)])
    t.save("kf:staying", [t.user("行李能寄存几天", "nlu_fallback", 0.2, after=300)])
    collector(crm, trackers).collect_all()
    crm.get_or_create_guest("kf:leaving")
    report = GuestEraser(crm, inbox_hash_key=HASH_KEY).erase(
        "kf:leaving", actor="cli:dpo", reason="guest asked"
    )
    assert report.counts["nlu_inbox_messages"] == 1
    assert [i["text"] for i in inbox(crm).items()] == ["行李能寄存几天"]

"""A customer-group guest's private matters leave the group: their itinerary / orders go to
them through 微信客服 (same external_userid) with a short polite note in the group, or the note
invites them there; notices after the turn (advisors' replies, deadline slips, resolutions)
reach them in 微信客服 instead of being dropped."""

from __future__ import annotations

import pytest

from bot.crm.store import CRMStore
from bot.settings import get_settings
from connectors.wecom import WeComInput  # noqa: F401  (Sanic sets its loop policy on import)
from tests.wecom.helpers import kf_texts

GUEST = "wm_group_guest"
KF_URL = "https://work.weixin.qq.com/kfid/kfcSANDBOX"
ITINERARY = "您的行程：11月2日入住三亚海棠湾度假酒店，海景大床房，两晚。"


@pytest.fixture
def kf_url(monkeypatch):
    monkeypatch.setenv("WECOM_KF_URL", KF_URL)
    get_settings.cache_clear()
    yield KF_URL
    get_settings.cache_clear()


def private_answer(connector):
    async def reply(message):
        out = message.output_channel
        if "行程" in (message.text or ""):  # what action_answer_itinerary does in a group
            await out.send_custom_json(message.sender_id, {"private": True, "text": ITINERARY})
        else:
            await out.send_text_message(message.sender_id, "您好～")

    connector.rasa.reply = reply


async def group_says(connector, text):
    await connector.post(
        "/_sandbox/guest/group",
        {"chatid": "wr_family", "userid": GUEST, "text": f"@礼宾助手 {text}"},
    )
    await connector.idle()


async def group_replies(connector):
    return [
        c["body"]["markdown"]["content"]
        for c in await connector.env.calls("/cgi-bin/aibot/response")
    ]


async def test_itinerary_asked_in_a_group_goes_to_the_guest_privately(kf_url, connector, db_url):
    CRMStore(db_url).get_or_create_guest(f"wecom:{GUEST}", name="王女士")
    private_answer(connector)
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "你好"})
    await connector.idle()
    await group_says(connector, "我的行程是怎么安排的")
    [group] = (await group_replies(connector))[-1:]
    assert "私信" in group and "海景大床房" not in group  # nothing private in front of the group
    assert kf_texts(await connector.env.calls())[-1] == ITINERARY


async def test_without_a_private_chat_the_group_note_invites_the_guest(kf_url, connector, db_url):
    private_answer(connector)
    await group_says(connector, "我的行程呢")
    [group] = await group_replies(connector)
    assert KF_URL in group and "海景大床房" not in group
    assert ITINERARY not in kf_texts(await connector.env.calls())


async def test_notices_after_the_turn_reach_a_group_guest_in_kf(connector):
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "你好"})
    await connector.idle()
    out = connector.channel.get_output_channel()
    await out.send_text_message(f"wecom:{GUEST}", "李顾问：房间已为您换到高楼层。")
    assert kf_texts(await connector.env.calls())[-1] == "李顾问：房间已为您换到高楼层。"


async def test_a_group_guest_with_no_private_chat_is_recorded_not_lost(connector):
    out = connector.channel.get_output_channel()
    await out.send_text_message("wecom:wm_never_wrote", "您的投诉已处理完毕。")
    [row] = await connector.channel.services.outbox.list(recipient="wecom:wm_never_wrote")
    assert row.status == "dead"  # kept for the record (and the console), not silently dropped
    assert "您的投诉已处理完毕。" not in kf_texts(await connector.env.calls())


def test_the_itinerary_action_marks_its_answer_private_in_a_group():
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from actions._common import say_private
    from bot.replies import Reply

    def tracker(chattype):
        latest = {
            "text": "我的行程",
            "intent": {"name": "ask_itinerary"},
            "metadata": {"wecom": {"chattype": chattype}},
        }
        return Tracker("wecom:wm_x", {}, latest, [], False, None, {}, "action_listen")

    group, single = CollectingDispatcher(), CollectingDispatcher()
    say_private(group, tracker("group"), Reply.of(ITINERARY))
    say_private(single, tracker("single"), Reply.of(ITINERARY))
    assert group.messages[0]["custom"] == {"private": True, "text": ITINERARY}
    assert single.messages[0]["text"] == ITINERARY

"""Real-shaped WeCom payloads -> inbox rows, sender ids and dedupe keys."""

from __future__ import annotations

import pytest

from bot.wecom.surfaces import aibot
from bot.wecom.surfaces import app
from bot.wecom.surfaces import kf
from bot.wecom.crypto import parse_xml
from bot.wecom.dedupe import xml_callback_key
from bot.wecom.errors import MalformedCallback
from tests.wecom.fixtures import load_json, load_text

EXT = "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw"


def test_kf_sync_page():
    page = load_json("kf_sync_msg.json")["msg_list"]
    rows = [kf.normalize(m) for m in page]
    kinds = [r.kind for r in rows]
    assert kinds == [
        "event:enter_session",
        "text",
        "text",
        "image",
        "location",
        "servicer:text",
        "event:user_recall_msg",
        "event:msg_send_fail",
        "event:session_status_change",
    ]
    assert {r.sender_id for r in rows} == {f"kf:{EXT}"}  # one guest, one Rasa sender id
    assert rows[0].payload["event"]["welcome_code"] == "aaaaaa"
    assert rows[0].payload["open_kfid"] == "wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyJTw"
    assert rows[1].payload["text"] == "明天三亚天气怎么样？"
    assert rows[2].payload["menu_id"] == "/affirm"
    assert rows[4].payload["location_name"].startswith("广州")
    assert rows[1].dedupe_key == "kf:msg:from_msgid_4622416642169452483"
    assert len({r.dedupe_key for r in rows}) == len(rows)


def test_kf_odd_items_do_not_crash():
    row = kf.normalize({"msgtype": "brand_new_type", "origin": "x"})
    assert row.kind == "brand_new_type" and row.sender_id == "kf:_system"


def test_aibot_group_text_strips_the_mention():
    row = aibot.normalize(load_json("aibot_group_text.json"), "礼宾助手")
    assert row.sender_id == "wecom:wmGUEST002"
    assert row.payload["text"] == "明天几点可以退房？"
    assert row.payload["mentioned"] is True
    assert row.payload["chattype"] == "group"
    assert row.payload["response_url"] == "RESPONSEURL"


def test_aibot_voice_arrives_transcribed():
    row = aibot.normalize(load_json("aibot_single_voice.json"), "礼宾助手")
    assert row.kind == "text" and row.payload["text"] == "帮我订明天早上八点的接机"


def test_aibot_events_and_stream_refresh():
    assert aibot.normalize(load_json("aibot_enter_chat.json")).kind == "event:enter_chat"
    assert aibot.normalize(load_json("aibot_stream_refresh.json")) is None
    with pytest.raises(ValueError):
        aibot.normalize({"msgtype": "text", "text": {"content": "x"}})


def test_app_text_and_event():
    xml = load_text("app_text.xml")
    row = app.normalize(xml, parse_xml(xml))
    assert row.sender_id == "wecom:advisor_li" and row.kind == "text"
    assert row.payload["text"] == "ack 42"
    assert row.dedupe_key == "app:msg:1234567890123456"
    message = app.app_message_from_payload(row.payload)
    assert (
        message.userid == "advisor_li"
        and message.text == "ack 42"
        and message.create_time == 1700000000
    )

    xml = load_text("app_event_click.xml")
    row = app.normalize(xml, parse_xml(xml))
    assert row.kind == "event:click" and row.payload["event_key"] == "MY_QUEUE"
    assert row.dedupe_key.startswith("app:evt:")


def test_event_dedupe_key_uses_sender_time_event_and_more():
    base = {
        "FromUserName": "u",
        "CreateTime": "1",
        "MsgType": "event",
        "Event": "click",
        "EventKey": "A",
    }
    assert xml_callback_key("app", base) == xml_callback_key("app", dict(base))
    assert xml_callback_key("app", base) != xml_callback_key("app", {**base, "EventKey": "B"})
    assert xml_callback_key("app", base) != xml_callback_key("app", {**base, "CreateTime": "2"})


def test_app_message_without_type_is_malformed():
    xml = "<xml><FromUserName>u</FromUserName></xml>"
    with pytest.raises(MalformedCallback):
        app.normalize(xml, parse_xml(xml))

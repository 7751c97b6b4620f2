"""The sender-id scheme and the typed inbox protocol: parsing, and the stored form unchanged."""

from __future__ import annotations

import pytest

from bot.wecom.surfaces import aibot
from bot.wecom.surfaces import app
from bot.wecom.surfaces import kf
from bot.wecom.protocol import (
    AibotMessage,
    AppMessage,
    Event,
    InboxStatus,
    KfMessage,
    Kind,
    KindClass,
    message_from_payload,
    public_metadata,
)
from bot.wecom.sender import KF_SYSTEM, Scheme, SenderId, is_wecom_sender


@pytest.mark.parametrize(
    "value, scheme, local, external",
    [
        ("kf:wm_guest", Scheme.KF, "wm_guest", "wm_guest"),
        ("wecom:wm_group_guest", Scheme.WECOM, "wm_group_guest", "wm_group_guest"),
        ("wecom:wo_other", Scheme.WECOM, "wo_other", "wo_other"),
        ("wecom:advisor_li", Scheme.WECOM, "advisor_li", None),
        ("rest-user-1", Scheme.OTHER, "rest-user-1", None),
        ("console:a:b", Scheme.OTHER, "console:a:b", None),
        ("kf:", Scheme.KF, "", None),
    ],
)
def test_sender_ids_parse_and_print_back(value, scheme, local, external):
    sender = SenderId.parse(value)
    assert (sender.scheme, sender.local, sender.external_userid) == (scheme, local, external)
    assert str(sender) == value


def test_sender_id_predicates():
    assert SenderId.kf("x").is_kf and not SenderId.kf("x").is_external_contact
    assert SenderId.parse("wecom:wm1").is_external_contact
    assert not SenderId.parse("wecom:advisor").is_external_contact
    assert [is_wecom_sender(v) for v in ("kf:a", "wecom:b", "rest", "kfa:b")] == [
        True,
        True,
        False,
        False,
    ]
    assert str(KF_SYSTEM) == "kf:_system"


@pytest.mark.parametrize(
    "stored",
    [
        "text",
        "event:enter_session",
        "servicer:text",
        "system:auth_change",
        "unknown:thing",
        "event:",
    ],
)
def test_kinds_round_trip(stored):
    assert str(Kind.parse(stored)) == stored


def test_kind_classes_and_events():
    assert Kind.parse("event:enter_session").is_(Event.ENTER_SESSION)
    assert not Kind.parse("text").is_(Event.ENTER_SESSION)
    assert (
        Kind.parse("servicer:text").cls is KindClass.SERVICER
        and not Kind.parse("servicer:text").is_text
    )
    assert Kind.parse("text").is_text
    assert len(str(Kind(KindClass.SYSTEM, "x" * 50))) == 32  # the column's width
    assert InboxStatus.PENDING == "pending" and InboxStatus("recalled") is InboxStatus.RECALLED


def test_normalized_messages_keep_the_stored_payload_shape():
    row = kf.normalize(
        {
            "msgid": "m1",
            "open_kfid": "wk1",
            "external_userid": "wm1",
            "send_time": 5,
            "origin": 3,
            "msgtype": "text",
            "text": {"content": "你好", "menu_id": "/deny"},
        }
    )
    assert row.payload == {
        "surface": "kf",
        "msgtype": "text",
        "origin": 3,
        "msgid": "m1",
        "open_kfid": "wk1",
        "external_userid": "wm1",
        "servicer_userid": None,
        "send_time": 5,
        "raw": row.payload["raw"],
        "text": "你好",
        "menu_id": "/deny",
    }
    message = row.message
    assert isinstance(message, KfMessage) and message.menu_id == "/deny" and message.from_guest
    assert (row.sender_id, row.kind) == ("kf:wm1", "text")
    assert KfMessage.from_payload(message.to_payload()) == message


def test_servicer_and_system_items_are_recorded_under_their_class():
    servicer = kf.normalize(
        {
            "msgid": "m2",
            "origin": 5,
            "msgtype": "text",
            "open_kfid": "wk1",
            "external_userid": "wm1",
            "text": {"content": "顾问在"},
        }
    )
    system = kf.normalize({"msgid": "m3", "origin": 4, "msgtype": "text", "open_kfid": "wk1"})
    assert (servicer.kind, system.kind, system.sender_id) == (
        "servicer:text",
        "system:text",
        "kf:_system",
    )


def test_aibot_and_app_messages_are_typed():
    row = aibot.normalize(
        {
            "msgid": "a1",
            "chattype": "group",
            "chatid": "wr1",
            "from": {"userid": "wm2"},
            "response_url": "https://x",
            "msgtype": "text",
            "text": {"content": "@礼宾 几点"},
        },
        "礼宾",
    )
    message = row.message
    assert isinstance(message, AibotMessage) and message.in_group and message.mentioned
    assert message.text == "几点" and str(message.sender) == "wecom:wm2"
    assert "response_url" not in public_metadata(row.payload) and "raw" not in public_metadata(
        row.payload
    )
    xml = (
        "<xml><ToUserName>c</ToUserName><FromUserName>advisor_li</FromUserName><CreateTime>17</CreateTime>"
        "<MsgType>event</MsgType><Event>CLICK</Event><EventKey>Q</EventKey><AgentID>1</AgentID></xml>"
    )
    from bot.wecom.crypto import parse_xml

    app_row = app.normalize(xml, parse_xml(xml))
    app_message = app_row.message
    assert isinstance(app_message, AppMessage)
    assert (app_row.kind, app_message.event, app_message.event_key, app_message.create_time) == (
        "event:click",
        "click",
        "Q",
        17,
    )


def test_an_unknown_surface_is_refused():
    with pytest.raises(ValueError):
        message_from_payload("sms", {})

"""The WeCom channel end to end: sandbox (as WeCom) -> Sanic blueprint -> inbox -> fake Rasa ->
output channel -> sandbox. Covers acknowledgement, dedupe, ordering, crash recovery, the kf rules
and every surface."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from bot.crm.store import CRMStore
from bot.wecom.surfaces import app as app_mod
from bot.wecom.surfaces import kf as kf_mod
from bot.wecom.config import WeComConfig
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.messages import REPLIES, utf8_len
from connectors.wecom import WeComInput
from tests.wecom.fixtures import load_json
from tests.wecom.helpers import FakeRasa, kf_texts, post_json, run_sanic

GUEST = "wm_guest_001"


def surface_crypto(channel, surface: str) -> CallbackCrypto:
    sc = channel.config.surface(surface)
    return CallbackCrypto(sc.token, sc.aes_key, sc.receive_id)


async def raw_post(connector, surface, body, params):
    async with connector.env.http.post(
        f"{connector.url}/webhooks/wecom/{surface}",
        params=params,
        data=body if isinstance(body, bytes) else body.encode(),
    ) as resp:
        return resp.status, await resp.text()


def app_xml(userid="advisor_li", content="ack 1", msgid="10001", msgtype="text", extra=""):
    return (
        f"<xml><ToUserName><![CDATA[ww_sandbox_corp]]></ToUserName><FromUserName><![CDATA[{userid}]]>"
        f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{msgtype}]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msgid}</MsgId><AgentID>1000002</AgentID>{extra}</xml>"
    )


# ---- URL verification and refusals ------------------------------------------------------------


async def test_url_verification_on_every_surface(connector):
    for surface in ("kf", "aibot", "app"):
        params = surface_crypto(connector.channel, surface).echostr_for("echo-" + surface)
        async with connector.env.http.get(
            f"{connector.url}/webhooks/wecom/{surface}", params=params
        ) as resp:
            assert resp.status == 200 and await resp.text() == "echo-" + surface


async def test_tencent_sample_verification_and_message_through_the_http_route(env):
    sample = load_json("tencent_sample.json")
    credentials = {
        "corp_id": sample["corp_id"],
        "app_token": sample["token"],
        "app_aes_key": sample["encoding_aes_key"],
        "max_clock_skew_s": "none",
    }
    config = WeComConfig.load(credentials)
    got = []

    async def handler(message):
        got.append(message)
        return True

    channel = WeComInput(
        credentials,
        services=env.services(config=config),
        sweep_interval_s=0,
        app_router=app_mod.AppCommandRouter([handler]),
    )
    async with run_sanic(channel, FakeRasa()) as url:
        v = sample["verify_url"]
        params = {k: v[k] for k in ("msg_signature", "timestamp", "nonce", "echostr")}
        async with env.http.get(f"{url}/webhooks/wecom/app", params=params) as resp:
            assert (resp.status, await resp.text()) == (200, v["reply"])
        m = sample["message"]
        params = {k: m[k] for k in ("msg_signature", "timestamp", "nonce")}
        async with env.http.post(
            f"{url}/webhooks/wecom/app", params=params, data=m["body"].encode()
        ) as resp:
            assert (resp.status, await resp.text()) == (200, "")
        await channel.wait_idle()
    assert [(g.userid, g.text, g.msgid) for g in got] == [
        ("mycreate", "hello", "4561255354251345929")
    ]


async def test_forged_stale_and_malformed_callbacks_are_refused_never_500(connector):
    crypto = surface_crypto(connector.channel, "app")
    body, params = crypto.encrypt_xml(app_xml())
    statuses = {}
    statuses["forged"] = (
        await raw_post(connector, "app", body, {**params, "msg_signature": "f" * 40})
    )[0]
    old = str(int(time.time()) - 3600)
    stale_body, stale_params = crypto.encrypt_xml(app_xml(msgid="2"), timestamp=old)
    statuses["stale"] = (await raw_post(connector, "app", stale_body, stale_params))[0]
    statuses["no params"] = (await raw_post(connector, "app", body, {}))[0]
    statuses["not xml"] = (await raw_post(connector, "app", "hello", params))[0]
    statuses["empty"] = (await raw_post(connector, "app", b"", params))[0]
    statuses["oversized"] = (
        await raw_post(connector, "app", b"<xml>" + b"a" * 300_000 + b"</xml>", params)
    )[0]
    no_type_body, no_type_params = crypto.encrypt_xml("<xml><FromUserName>u</FromUserName></xml>")
    statuses["no MsgType"] = (await raw_post(connector, "app", no_type_body, no_type_params))[0]
    aibot = surface_crypto(connector.channel, "aibot")
    statuses["aibot not json"] = (await raw_post(connector, "aibot", "[]", params))[0]
    no_from, no_from_params = aibot.encrypt_json({"msgtype": "text", "text": {"content": "x"}})
    statuses["aibot no sender"] = (await raw_post(connector, "aibot", no_from, no_from_params))[0]
    wrong_key_body, wrong_key_params = surface_crypto(connector.channel, "kf").encrypt_xml(
        app_xml(msgid="3")
    )
    statuses["kf key on app url"] = (
        await raw_post(connector, "app", wrong_key_body, wrong_key_params)
    )[0]
    async with connector.env.http.get(f"{connector.url}/webhooks/wecom/kf") as resp:
        statuses["GET without signature"] = resp.status
    assert statuses == {
        "forged": 403,
        "stale": 403,
        "no params": 403,
        "not xml": 400,
        "empty": 400,
        "oversized": 413,
        "no MsgType": 400,
        "aibot not json": 400,
        "aibot no sender": 400,
        "kf key on app url": 403,
        "GET without signature": 403,
    }
    assert connector.channel.services.inbox.all_sync() == []


async def test_unknown_message_type_is_acknowledged_and_recorded(connector):
    crypto = surface_crypto(connector.channel, "app")
    body, params = crypto.encrypt_xml(app_xml(msgtype="hologram", msgid="77"))
    assert await raw_post(connector, "app", body, params) == (200, "")
    await connector.idle()
    rows = connector.channel.services.inbox.all_sync()
    assert [(r.kind, r.status) for r in rows] == [("hologram", "done")]


# ---- 微信客服 ------------------------------------------------------------------------------------


async def test_kf_guest_message_reaches_rasa_and_the_reply_goes_out(connector, db_url):
    result = await connector.post(
        "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "明天三亚天气怎么样？"}
    )
    assert result["delivery"]["delivered"] and result["delivery"]["body"] == ""
    await connector.idle()
    [message] = connector.rasa.messages
    assert (message.sender_id, message.text, message.input_channel) == (
        f"kf:{GUEST}",
        "明天三亚天气怎么样？",
        "wecom",
    )
    assert message.metadata["wecom"]["open_kfid"] == connector.env.state.open_kfid
    assert message.output_channel.name() == "wecom"
    calls = await connector.env.calls()
    assert kf_texts(calls) == ["收到：明天三亚天气怎么样？"]
    sync = [c for c in calls if c["path"] == "/cgi-bin/kf/sync_msg"][0]["body"]
    assert sync["token"].startswith("ENC") and sync["open_kfid"] == connector.env.state.open_kfid
    guest = CRMStore(db_url).find_guest(f"kf:{GUEST}")
    assert guest.kf_external_userid == GUEST and guest.kf_open_kfid == connector.env.state.open_kfid


async def test_replayed_callbacks_are_handled_once(connector):
    crypto = surface_crypto(connector.channel, "app")
    body, params = crypto.encrypt_xml(app_xml(content="你好", msgid="555"))
    for _ in range(4):  # the original and three WeCom retries / replays
        assert await raw_post(connector, "app", body, params) == (200, "")
    # 微信客服: the same kf_msg_or_event three times -> the message still reaches Rasa once
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "一次就好"})
    kf_body, kf_params = surface_crypto(connector.channel, "kf").encrypt_xml(
        "<xml><ToUserName>ww_sandbox_corp</ToUserName><CreateTime>1</CreateTime><MsgType>event</MsgType>"
        f"<Event>kf_msg_or_event</Event><Token>T</Token><OpenKfId>{connector.env.state.open_kfid}</OpenKfId></xml>"
    )
    for _ in range(3):
        assert (await raw_post(connector, "kf", kf_body, kf_params))[0] == 200
    await connector.idle()
    rows = connector.channel.services.inbox.all_sync()
    assert len([r for r in rows if r.surface == "app"]) == 1
    assert connector.rasa.texts() == ["一次就好"]
    assert kf_texts(await connector.env.calls()) == ["收到：一次就好"]


async def test_one_guests_messages_are_handled_in_order_guests_in_parallel(connector):
    rasa = connector.rasa
    active = {}
    overlap = {"same": 0, "other": 0}

    async def reply(message):
        active[message.sender_id] = active.get(message.sender_id, 0) + 1
        if active[message.sender_id] > 1:
            overlap["same"] += 1
        if len([s for s, n in active.items() if n]) > 1:
            overlap["other"] += 1
        await asyncio.sleep(random.uniform(0.01, 0.08))
        active[message.sender_id] -= 1
        await message.output_channel.send_text_message(message.sender_id, "ok " + message.text)

    rasa.reply = reply
    for i in range(6):
        for guest in ("wm_a", "wm_b"):
            await connector.post(
                "/_sandbox/guest/kf", {"external_userid": guest, "text": f"{guest}-{i}"}
            )
    await connector.idle(20)
    assert rasa.texts("kf:wm_a") == [f"wm_a-{i}" for i in range(6)]
    assert rasa.texts("kf:wm_b") == [f"wm_b-{i}" for i in range(6)]
    assert overlap["same"] == 0


async def test_accepted_messages_survive_a_crash_before_processing(connector, env):
    channel = connector.channel
    channel.tasks.kinds.add("turn")  # "killed" right after the 200: no inbox worker starts
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "第一条"})
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "第二条"})
    await connector.post("/_sandbox/advisor/app", {"userid": "advisor_li", "text": "在吗"})
    await connector.idle()
    assert connector.rasa.messages == []
    assert [r.status for r in channel.services.inbox.all_sync()] == ["pending"] * 3

    # a third callback is acknowledged, but the process dies before it even pulls the message
    channel.tasks.kinds.add("pull")
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "第三条"})

    rasa2 = FakeRasa()
    restarted = WeComInput({}, services=env.services(), sweep_interval_s=0)
    await restarted.start(rasa2)
    await restarted.wait_idle()
    assert rasa2.texts() == ["第一条", "第二条", "第三条"]
    assert {r.status for r in restarted.services.inbox.all_sync()} == {"done"}
    assert kf_texts(await env.calls()) == ["收到：第一条", "收到：第二条", "收到：第三条"]
    await restarted.stop()


async def test_a_turn_rasa_finished_before_a_crash_is_answered_from_the_tracker_not_run_again(
    connector, env
):
    from rasa.core.tracker_store import InMemoryTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    channel = connector.channel
    channel.tasks.kinds.add("turn")
    first = await connector.post(
        "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "早餐几点"}
    )
    second = await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "谢谢"})
    await connector.idle()
    inbox = channel.services.inbox
    # The dead process had claimed the first message and Rasa had saved the turn; the reply never went out.
    claimed = inbox.claim_sync(f"kf:{GUEST}")
    inbox.release_sync(claimed.id, "process killed")
    store = InMemoryTrackerStore(Domain.empty())
    tracker = DialogueStateTracker(f"kf:{GUEST}", [])
    tracker.update(UserUttered("早餐几点", message_id=first["msgid"]))
    tracker.update(
        BotUttered(
            "早餐 6:30-10:30，在一楼。",
            data={"buttons": [{"title": "预订早餐", "payload": "/order_addon"}]},
        )
    )
    await store.save(tracker)

    rasa2 = FakeRasa()
    restarted = WeComInput({}, services=env.services(), sweep_interval_s=0)
    restarted.tracker_store = store
    await restarted.start(rasa2)
    await restarted.wait_idle()
    assert rasa2.texts() == ["谢谢"]  # the first turn was not run again
    calls = [c for c in await env.calls() if c["path"] == "/cgi-bin/kf/send_msg"]
    assert calls[0]["body"]["msgtype"] == "msgmenu"
    assert calls[0]["body"]["msgmenu"]["head_content"] == "早餐 6:30-10:30，在一楼。"
    assert kf_texts(calls[1:]) == ["收到：谢谢"]
    assert second["msgid"] != first["msgid"]
    await restarted.stop()


async def test_a_retried_message_unknown_to_the_tracker_is_processed(connector, env):
    from rasa.core.tracker_store import InMemoryTrackerStore
    from rasa.shared.core.domain import Domain

    channel = connector.channel
    channel.tasks.kinds.add("turn")
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "几点退房"})
    await connector.idle()
    claimed = channel.services.inbox.claim_sync(f"kf:{GUEST}")
    channel.services.inbox.release_sync(claimed.id, "killed before Rasa saved the turn")
    rasa2 = FakeRasa()
    restarted = WeComInput({}, services=env.services(), sweep_interval_s=0)
    restarted.tracker_store = InMemoryTrackerStore(Domain.empty())
    await restarted.start(rasa2)
    await restarted.wait_idle()
    assert rasa2.texts() == ["几点退房"]
    assert kf_texts(await env.calls()) == ["收到：几点退房"]
    await restarted.stop()


async def test_a_failing_message_is_retried_then_the_guest_gets_an_apology(connector):
    attempts = []

    async def reply(message):
        attempts.append(message.text)
        if message.text == "boom":
            raise RuntimeError("action server down")
        await message.output_channel.send_text_message(message.sender_id, "ok")

    connector.rasa.reply = reply
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "boom"})
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "after"})
    await connector.idle()
    assert attempts == ["boom"]  # the guest's later message waits behind it (order)
    for _ in range(3):
        await connector.channel.sweep()
        await connector.idle()
    assert attempts == ["boom", "boom", "boom", "after"]
    assert kf_texts(await connector.env.calls()) == [REPLIES["busy"], "ok"]
    assert [r.status for r in connector.channel.services.inbox.all_sync()] == ["failed", "done"]


async def test_kf_five_messages_per_48_hours(connector):
    async def reply(message):  # seven menus cannot be merged into fewer messages
        for i in range(7):
            await message.output_channel.send_text_with_buttons(
                message.sender_id, f"第{i}项", [{"title": "好", "payload": f"/affirm{i}"}]
            )

    connector.rasa.reply = reply
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "都给我看看"})
    await connector.idle()
    sends = [c for c in await connector.env.calls() if c["path"] == "/cgi-bin/kf/send_msg"]
    assert len(sends) == 5 and all(c["errcode"] == 0 for c in sends)
    outbox = connector.channel.services.outbox.list_sync()
    assert [o.status for o in outbox] == ["sent"] * 5 + ["quota_exhausted"] * 2
    # the guest writes again: a fresh budget
    connector.rasa.reply = None
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "再问一个"})
    await connector.idle()
    assert kf_texts(await connector.env.calls())[-1] == "收到：再问一个"


async def test_kf_95001_from_wecom_is_recorded_not_retried(connector):
    await post_json(
        connector.env.http,
        f"{connector.env.sandbox}/_sandbox/faults",
        {"path": "/cgi-bin/kf/send_msg", "errcode": 95001, "times": 1},
    )
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "你好"})
    await connector.idle()
    sends = [c for c in await connector.env.calls() if c["path"] == "/cgi-bin/kf/send_msg"]
    assert [c["errcode"] for c in sends] == [95001]
    [row] = connector.channel.services.outbox.list_sync()
    assert (row.status, row.errcode) == ("quota_exhausted", 95001)
    quota = connector.channel.services.kf.quota_sync(connector.env.state.open_kfid, GUEST)
    assert quota["sent_count"] == 5 and quota["exhausted_at"] is not None
    await connector.channel.sweep()
    assert len([c for c in await connector.env.calls() if c["path"] == "/cgi-bin/kf/send_msg"]) == 1


async def test_bot_is_silent_while_an_advisor_serves(connector):
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "转人工"})
    await connector.idle()
    s = connector.channel.services
    await s.kf.transfer(connector.env.state.open_kfid, GUEST, kf_mod.STATE_HUMAN, "advisor_li")
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "你好顾问"})
    await connector.idle()
    assert connector.rasa.texts() == ["转人工", "你好顾问"]  # Rasa still hears it (tracker, CRM)
    assert kf_texts(await connector.env.calls()) == ["收到：转人工"]  # but does not answer
    assert [o.status for o in s.outbox.list_sync()] == ["sent", "suppressed"]
    trans = [
        c for c in await connector.env.calls() if c["path"] == "/cgi-bin/kf/service_state/trans"
    ][0]
    assert trans["body"] == {
        "open_kfid": connector.env.state.open_kfid,
        "external_userid": GUEST,
        "service_state": 3,
        "servicer_userid": "advisor_li",
    }


async def test_buttons_become_a_menu_and_the_click_comes_back_as_the_payload(connector):
    long_payload = (
        '/order_addon{"item": "airport_pickup", "note": "航班CA1234，两大一小，需要儿童座椅"}'
    )

    async def reply(message):
        await message.output_channel.send_text_with_buttons(
            message.sender_id,
            "需要为您预订接机吗？",
            [{"title": "需要", "payload": long_payload}, {"title": "不用了", "payload": "/deny"}],
        )

    connector.rasa.reply = reply
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "我后天到三亚"})
    await connector.idle()
    menu = [c for c in await connector.env.calls() if c["path"] == "/cgi-bin/kf/send_msg"][0][
        "body"
    ]["msgmenu"]
    assert menu["head_content"] == "需要为您预订接机吗？"
    items = [i["click"] for i in menu["list"]]
    assert [i["content"] for i in items] == ["需要", "不用了"]
    assert items[1]["id"] == "/deny" and len(items[0]["id"].encode()) <= 64
    connector.rasa.reply = None
    await connector.post(
        "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "需要", "menu_id": items[0]["id"]}
    )
    await connector.post(
        "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "不用了", "menu_id": "/deny"}
    )
    await connector.idle()
    assert connector.rasa.texts()[1:] == [long_payload, "/deny"]


async def test_enter_session_greets_with_send_msg_on_event(connector):
    async def reply(message):
        assert message.text == "/greet"
        assert message.metadata["wecom"]["event"] == "enter_session"
        await message.output_channel.send_text_message(
            message.sender_id, "您好！欢迎来到海棠湾度假酒店。"
        )
        await message.output_channel.send_text_with_buttons(
            message.sender_id, "想了解什么？", [{"title": "天气", "payload": "/ask_weather"}]
        )

    connector.rasa.reply = reply
    await connector.post("/_sandbox/guest/kf/enter", {"external_userid": GUEST})
    await connector.idle()
    calls = [c for c in await connector.env.calls() if c["path"].startswith("/cgi-bin/kf/send")]
    assert [c["path"] for c in calls] == ["/cgi-bin/kf/send_msg_on_event"]
    body = calls[0]["body"]
    assert body["msgtype"] == "msgmenu" and body["code"].startswith("wc")
    assert body["msgmenu"]["head_content"] == "您好！欢迎来到海棠湾度假酒店。\n\n想了解什么？"
    assert calls[0]["errcode"] == 0


async def test_enter_session_without_a_welcome_intent_uses_the_fixed_greeting(env):
    config = WeComConfig.load({"welcome_intent": ""})
    channel = WeComInput({}, services=env.services(config=config), sweep_interval_s=0)
    rasa = FakeRasa()
    async with run_sanic(channel, rasa, env.connector_port):
        await post_json(
            env.http, f"{env.sandbox}/_sandbox/guest/kf/enter", {"external_userid": GUEST}
        )
        await channel.wait_idle()
    assert rasa.messages == []
    assert kf_texts(await env.calls()) == [REPLIES["welcome"]]


@pytest.mark.parametrize(
    "msgtype, expect",
    [
        ("image", "图片"),
        ("voice", "语音"),
        ("location", "位置"),
        ("file", "文件"),
        ("video", "视频"),
        ("link", "链接"),
    ],
)
async def test_non_text_gets_a_chinese_reply(connector, msgtype, expect):
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "msgtype": msgtype})
    await connector.idle()
    assert connector.rasa.messages == []
    [text] = kf_texts(await connector.env.calls())
    assert expect in text


async def test_a_recalled_message_is_not_answered(connector):
    channel = connector.channel
    channel.tasks.kinds.add("turn")
    sent = await connector.post(
        "/_sandbox/guest/kf", {"external_userid": GUEST, "msgtype": "image"}
    )
    await connector.post(
        "/_sandbox/guest/kf/recall", {"external_userid": GUEST, "msgid": sent["msgid"]}
    )
    await connector.idle()
    channel.tasks.kinds.discard("turn")
    await channel.sweep()
    await connector.idle()
    assert kf_texts(await connector.env.calls()) == []
    kinds = {r.kind: r.status for r in channel.services.inbox.all_sync()}
    assert kinds == {"image": "recalled", "event:user_recall_msg": "done"}


async def test_long_replies_are_split_at_2048_bytes(connector):
    text = "温馨提示：" + "请随身携带身份证件，海边紫外线强，请注意防晒。" * 60

    async def reply(message):
        await message.output_channel.send_text_message(message.sender_id, text)

    connector.rasa.reply = reply
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "注意事项"})
    await connector.idle()
    parts = kf_texts(await connector.env.calls())
    assert len(parts) > 1 and all(utf8_len(p) <= 2048 for p in parts)
    assert "".join(parts) == text


async def test_empty_and_oversized_texts(connector):
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "   "})
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "很" * 10000})
    await connector.idle()
    assert kf_texts(await connector.env.calls())[0] == REPLIES["empty"]
    [message] = connector.rasa.messages
    assert len(message.text) == 2000 and message.metadata["wecom"]["truncated"] is True


async def test_sync_failure_is_retried_by_the_sweep_without_losing_the_message(connector):
    await post_json(
        connector.env.http,
        f"{connector.env.sandbox}/_sandbox/faults",
        {"path": "/cgi-bin/kf/sync_msg", "status": 502, "times": 3},
    )
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "在吗"})
    await connector.idle()
    assert connector.rasa.messages == []
    assert (await connector.channel.services.inbox.kf_cursor(connector.env.state.open_kfid))[
        "cursor"
    ] is None
    await connector.channel.sweep()
    await connector.idle()
    assert connector.rasa.texts() == ["在吗"]


async def test_sync_pages_through_has_more(connector, monkeypatch):
    monkeypatch.setattr(kf_mod, "SYNC_PAGE_LIMIT", 2)
    for i in range(4):  # messages WeCom holds before the callback arrives
        connector.env.state.kf_messages[connector.env.state.open_kfid].append(
            {
                "msgid": f"m{i}",
                "open_kfid": connector.env.state.open_kfid,
                "external_userid": GUEST,
                "send_time": int(time.time()),
                "origin": 3,
                "msgtype": "text",
                "text": {"content": f"第{i}条"},
            }
        )
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "第4条"})
    await connector.idle()
    syncs = [c for c in await connector.env.calls() if c["path"] == "/cgi-bin/kf/sync_msg"]
    assert [c["body"].get("cursor") for c in syncs] == [None, "c2", "c4"]
    assert connector.rasa.texts() == [f"第{i}条" for i in range(5)]
    assert (await connector.channel.services.inbox.kf_cursor(connector.env.state.open_kfid))[
        "cursor"
    ] == "c5"


async def test_routing_output_for_messages_outside_a_turn(connector):
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "明天见"})
    await connector.idle()
    out = connector.channel.get_output_channel()
    await out.send_text_message(f"kf:{GUEST}", "提醒：明早8点接机。")
    await out.send_text_message("wecom:advisor_li", "客人已确认接机。")
    calls = await connector.env.calls()
    assert kf_texts(calls)[-1] == "提醒：明早8点接机。"
    assert [
        c["body"]["text"]["content"] for c in calls if c["path"] == "/cgi-bin/message/send"
    ] == ["客人已确认接机。"]


# ---- 智能机器人 -----------------------------------------------------------------------------------


async def test_group_message_with_mention_is_answered_by_name(connector, db_url):
    CRMStore(db_url).get_or_create_guest("wecom:wm_guest_002", name="王女士")
    result = await connector.post(
        "/_sandbox/guest/group",
        {"chatid": "wr_group", "userid": "wm_guest_002", "text": "@礼宾助手 几点退房？"},
    )
    assert result["delivery"]["delivered"]
    await connector.idle()
    [message] = connector.rasa.messages
    assert (message.sender_id, message.text) == ("wecom:wm_guest_002", "几点退房？")
    [call] = [c for c in await connector.env.calls() if c["path"] == "/cgi-bin/aibot/response"]
    assert call["errcode"] == 0
    assert call["body"] == {
        "msgtype": "markdown",
        "markdown": {"content": "王女士，收到：几点退房？"},
    }


async def test_group_message_without_mention_is_recorded_not_answered(connector):
    result = await connector.post(
        "/_sandbox/guest/group", {"chatid": "wr_group", "userid": "u1", "text": "大家好"}
    )
    assert result["delivery"]["delivered"] is False  # WeCom does not call the bot without @
    crypto = surface_crypto(connector.channel, "aibot")
    body, params = crypto.encrypt_json(
        {
            "msgid": "x1",
            "chatid": "wr_group",
            "chattype": "group",
            "from": {"userid": "u1"},
            "response_url": "http://127.0.0.1:9/none",
            "msgtype": "text",
            "text": {"content": "大家好"},
        }
    )
    assert await raw_post(connector, "aibot", body, params) == (200, "")
    await connector.idle()
    assert connector.rasa.messages == []
    assert [r.status for r in connector.channel.services.inbox.all_sync()] == ["ignored"]


async def test_single_chat_turn_is_one_markdown_reply(connector):
    async def reply(message):
        await message.output_channel.send_text_message(message.sender_id, "好的")
        await message.output_channel.send_text_with_buttons(
            message.sender_id,
            "请选择时间",
            [{"title": "上午", "payload": "/a"}, {"title": "下午", "payload": "/b"}],
        )

    connector.rasa.reply = reply
    await connector.post("/_sandbox/guest/group", {"userid": "u2", "text": "预约SPA"})
    await connector.idle()
    [call] = [c for c in await connector.env.calls() if c["path"] == "/cgi-bin/aibot/response"]
    assert call["body"]["markdown"]["content"] == "好的\n\n请选择时间\n1. 上午\n2. 下午"


async def test_enter_chat_is_welcomed_in_the_http_answer(connector):
    result = await connector.post("/_sandbox/guest/aibot/enter", {"userid": "u3"})
    assert result["welcome"] == {"msgtype": "text", "text": {"content": REPLIES["welcome"]}}


# ---- the self-built app ----------------------------------------------------------------------


async def test_app_messages_go_to_the_command_router(connector):
    seen = []

    def ack_handler(message):
        seen.append((message.userid, message.text))
        return message.text.startswith("ack")

    connector.channel.app_router.add(ack_handler)
    await connector.post("/_sandbox/advisor/app", {"userid": "advisor_li", "text": "ack 42"})
    await connector.post("/_sandbox/advisor/app", {"userid": "advisor_li", "text": "随便说说"})
    await connector.idle()
    assert seen == [("advisor_li", "ack 42"), ("advisor_li", "随便说说")]
    sends = [c["body"] for c in await connector.env.calls() if c["path"] == "/cgi-bin/message/send"]
    assert [b["text"]["content"] for b in sends] == [REPLIES["app_unhandled"]]
    assert connector.rasa.messages == []


async def test_public_send_functions(connector):
    from bot.wecom.externalcontact import add_msg_template, mark_tag, send_group_robot

    s = connector.channel.services
    assert (await s.app.send_text("advisor_li", "新投诉：房间噪音")).ok
    assert (
        await s.app.send_textcard(
            "advisor_li", "投诉 #12", "10分钟内确认", "https://example.com/t/12"
        )
    ).ok
    assert (await mark_tag("advisor_li", "wm_guest_001", add_tag=["et_diving"], services=s)).ok
    result = await add_msg_template(
        sender="advisor_li", external_userid=["wm_guest_001"], text="会员日快乐", services=s
    )
    assert result.ok and result.response["fail_list"] == []
    assert (await send_group_robot("sandbox-robot-key", "值班提醒", services=s)).ok
    msg_code = await s.kf.transfer(
        connector.env.state.open_kfid, GUEST, kf_mod.STATE_HUMAN, "advisor_li"
    )
    assert msg_code
    paths = [c["path"] for c in await connector.env.calls() if c["path"] != "/cgi-bin/gettoken"]
    assert paths == [
        "/cgi-bin/message/send",
        "/cgi-bin/message/send",
        "/cgi-bin/externalcontact/mark_tag",
        "/cgi-bin/externalcontact/add_msg_template",
        "/cgi-bin/webhook/send",
        "/cgi-bin/kf/service_state/trans",
    ]


# ---- with Redis: tokens, rate limits, dedupe marks and kf state shared through it -------------


@pytest.mark.redis
async def test_conversation_with_redis(env, monkeypatch):
    from tests.conftest import REDIS_TEST_URL, require_service

    require_service("Redis", "127.0.0.1", 6379)
    import redis.asyncio as aioredis

    from bot.wecom.redis_conn import get_redis

    monkeypatch.setenv("REDIS_URL", REDIS_TEST_URL)
    from bot.settings import get_settings

    get_settings.cache_clear()
    client = aioredis.from_url(REDIS_TEST_URL)
    patterns = ["wechatpy:ww_sandbox_corp_*", "concierge:wecom:*"]

    async def clean():
        for pattern in patterns:
            async for key in client.scan_iter(match=pattern):
                await client.delete(key)

    await clean()
    try:
        from bot.wecom.services import WeComServices

        services = WeComServices(sleep=env.sleeps, timeout_s=2.0)  # Redis-backed everything
        env.made.append(services)
        assert services.redis is not None
        rasa = FakeRasa()
        channel = WeComInput({}, services=services, sweep_interval_s=0)
        async with run_sanic(channel, rasa, env.connector_port):
            for text in ("你好", "几点早餐"):
                await post_json(
                    env.http,
                    f"{env.sandbox}/_sandbox/guest/kf",
                    {"external_userid": GUEST, "text": text},
                )
            await post_json(
                env.http,
                f"{env.sandbox}/_sandbox/advisor/app",
                {"userid": "advisor_li", "text": "hi"},
            )
            await channel.wait_idle()
        assert rasa.texts() == ["你好", "几点早餐"]
        assert kf_texts(await env.calls()) == ["收到：你好", "收到：几点早餐"]
        assert await client.exists("wechatpy:ww_sandbox_corp_sandbox-kf_access_token")
        assert [k async for k in client.scan_iter(match="concierge:wecom:kfstate:*")]
        assert [k async for k in client.scan_iter(match="concierge:wecom:rl:app:*")]
        await get_redis().close()
    finally:
        await clean()
        await client.close()


async def test_kf_notice_on_the_app_url_is_accepted_too(connector):
    """WeCom posts kf_msg_or_event to the URL of the app that manages 微信客服 (maybe the app's)."""
    await connector.post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "第一条"})
    await connector.idle()
    connector.env.state.kf_messages[connector.env.state.open_kfid].append(
        {
            "msgid": "via-app-url",
            "open_kfid": connector.env.state.open_kfid,
            "external_userid": GUEST,
            "send_time": int(time.time()),
            "origin": 3,
            "msgtype": "text",
            "text": {"content": "第二条"},
        }
    )
    body, params = surface_crypto(connector.channel, "app").encrypt_xml(
        "<xml><ToUserName>ww_sandbox_corp</ToUserName><CreateTime>1</CreateTime><MsgType>event</MsgType>"
        f"<Event>kf_msg_or_event</Event><Token></Token><OpenKfId>{connector.env.state.open_kfid}</OpenKfId></xml>"
    )
    assert await raw_post(connector, "app", body, params) == (200, "")
    await connector.idle()
    assert connector.rasa.texts() == ["第一条", "第二条"]


async def test_guest_hooks_answer_before_rasa_and_a_failing_hook_loses_nothing(env):
    """What the composition root passes in (survey score, rating) may answer instead of Rasa;
    a hook that raises is skipped and the message goes on."""
    heard = []

    async def broken(sender_id, text):
        raise RuntimeError("survey database down")

    async def rating(sender_id, text):
        heard.append((sender_id, text))
        return "感谢您的评分！" if text == "5" else None

    rasa = FakeRasa()
    channel = WeComInput({}, services=env.services(), sweep_interval_s=0, hooks=[broken, rating])
    async with run_sanic(channel, rasa, env.connector_port):
        for text in ("5", "还想问问早餐", "/greet"):
            await post_json(
                env.http,
                f"{env.sandbox}/_sandbox/guest/kf",
                {"external_userid": GUEST, "text": text},
            )
            await channel.wait_idle()
    assert rasa.texts() == ["还想问问早餐", "/greet"]  # commands ("/...") skip the hooks
    assert heard == [(f"kf:{GUEST}", "5"), (f"kf:{GUEST}", "还想问问早餐")]
    assert kf_texts(await env.calls()) == ["感谢您的评分！", "收到：还想问问早餐", "收到：/greet"]


async def test_extensions_attach_commands_and_hooks_when_the_channel_starts(env):
    async def on_app(message):
        return message.text == "队列"

    async def hook(sender_id, text):
        return None

    async def paging_like(services, router):
        assert services is channel.services  # built on the channel's own clients
        router.add(on_app)
        return [hook]

    channel = WeComInput({}, services=env.services(), sweep_interval_s=0, extensions=[paging_like])
    await channel.start(FakeRasa())
    try:
        assert len(channel.app_router) == 1 and channel.runner.hooks == [hook]
        await channel.start(FakeRasa())  # a second start attaches nothing twice
        assert len(channel.app_router) == 1 and channel.runner.hooks == [hook]
    finally:
        await channel.stop()

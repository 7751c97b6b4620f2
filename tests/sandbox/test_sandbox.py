"""The sandbox speaks WeCom's protocol: tokens and errcodes, the kf rules, faults, the call log,
and encrypted callbacks that decrypt with the shared dev secrets."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from bot.settings import get_settings
from bot.wecom import dev_defaults
from bot.wecom.crypto import CallbackCrypto, parse_xml
from bot.wecom.delivery.intake import HANDLE_MS_HEADER
from tests.wecom.helpers import free_port, run_sandbox


@pytest.fixture
async def sandbox(monkeypatch):
    for name in dev_defaults.ENV_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    receiver_port = free_port()
    async with run_sandbox(
        connector_url=f"http://127.0.0.1:{receiver_port}", callback_retries=2, callback_timeout_s=2
    ) as (base, state):
        async with aiohttp.ClientSession() as http:
            yield Sandbox(base, state, http, receiver_port)


class Sandbox:
    def __init__(self, base, state, http, receiver_port):
        self.base, self.state, self.http, self.receiver_port = base, state, http, receiver_port

    async def get(self, _path, **params):
        async with self.http.get(self.base + _path, params=params) as resp:
            return await resp.json()

    async def post(self, _path, body=None, **params):
        async with self.http.post(self.base + _path, json=body or {}, params=params) as resp:
            return await resp.json()

    async def token(self, secret=dev_defaults.APP_SECRET):
        data = await self.get("/cgi-bin/gettoken", corpid=dev_defaults.CORP_ID, corpsecret=secret)
        return data["access_token"]


class Receiver:
    """Plays the connector: records callbacks, answers with the given statuses in turn."""

    def __init__(self, statuses=(200,), *, delay_s: float = 0.0, headers=None):
        self.statuses = list(statuses)
        self.requests = []
        self.delay_s = delay_s
        self.headers = dict(headers or {})

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.query), await request.text()))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.Response(status=status, text="", headers=self.headers)

    async def start(self, port):
        app = web.Application()
        app.router.add_post("/webhooks/wecom/{surface}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def stop(self):
        await self.runner.cleanup()


async def test_gettoken_errors_and_success(sandbox):
    assert (await sandbox.get("/cgi-bin/gettoken", corpid="wrong", corpsecret="x"))[
        "errcode"
    ] == 40013
    assert (await sandbox.get("/cgi-bin/gettoken", corpid=dev_defaults.CORP_ID, corpsecret="x"))[
        "errcode"
    ] == 40001
    data = await sandbox.get(
        "/cgi-bin/gettoken", corpid=dev_defaults.CORP_ID, corpsecret=dev_defaults.KF_SECRET
    )
    assert data["errcode"] == 0 and data["expires_in"] == 7200 and data["access_token"]


async def test_token_errcodes(sandbox):
    body = {
        "touser": "lisi",
        "agentid": dev_defaults.APP_AGENT_ID,
        "msgtype": "text",
        "text": {"content": "x"},
    }
    assert (await sandbox.post("/cgi-bin/message/send", body))["errcode"] == 41001
    assert (await sandbox.post("/cgi-bin/message/send", body, access_token="bogus"))[
        "errcode"
    ] == 40014
    token = await sandbox.token()
    assert (await sandbox.post("/cgi-bin/message/send", body, access_token=token))["errcode"] == 0
    await sandbox.post("/_sandbox/tokens/expire")
    assert (await sandbox.post("/cgi-bin/message/send", body, access_token=token))[
        "errcode"
    ] == 42001
    kf_token = await sandbox.token(dev_defaults.KF_SECRET)
    assert (await sandbox.post("/cgi-bin/message/send", body, access_token=kf_token))[
        "errcode"
    ] == 48002


async def test_member_rate_limit_45009(sandbox):
    token = await sandbox.token()
    body = {
        "touser": "lisi",
        "agentid": dev_defaults.APP_AGENT_ID,
        "msgtype": "text",
        "text": {"content": "x"},
    }
    codes = [
        (await sandbox.post("/cgi-bin/message/send", body, access_token=token))["errcode"]
        for _ in range(31)
    ]
    assert codes == [0] * 30 + [45009]


async def test_message_send_duplicate_check_as_wecom_documents_it(sandbox, monkeypatch):
    """`enable_duplicate_check: 1`: the same request JSON within `duplicate_check_interval`
    (default 1800 s, at most 4 h) is not received again; the answer is the usual one."""
    from types import SimpleNamespace

    import bot.sandbox.state as sandbox_state

    now = [time.time()]
    monkeypatch.setattr(sandbox_state, "time", SimpleNamespace(time=lambda: now[0]))
    card = {"title": "【新投诉】#1", "description": "烟味", "url": "http://x/1?step=1"}
    checked = {
        "touser": "lisi",
        "agentid": dev_defaults.APP_AGENT_ID,
        "msgtype": "textcard",
        "textcard": card,
        "enable_duplicate_check": 1,
        "duplicate_check_interval": 600,
    }

    async def send(body):
        token = await sandbox.token()  # the sandbox's clock jumps by hours here
        answer = await sandbox.post("/cgi-bin/message/send", body, access_token=token)
        assert answer["errcode"] == 0 and answer["msgid"]

    def cards():
        return [f for f in sandbox.state.feed if f["channel"] == "app" and f.get("card")]

    await send(checked)
    await send(dict(reversed(list(checked.items()))))  # the same JSON, keys in another order
    now[0] += 599
    await send(checked)
    assert len(cards()) == 1
    calls = (await sandbox.get("/_sandbox/calls", path="/cgi-bin/message/send"))["calls"]
    assert [c.get("duplicate", False) for c in calls] == [False, True, True]
    await send({**checked, "textcard": {**card, "url": "http://x/1?step=2"}})  # other content
    await send({**checked, "touser": "wangwu"})  # another member
    assert len(cards()) == 3
    now[0] += 1  # the interval is over
    await send(checked)
    assert len(cards()) == 4
    unchecked = {k: v for k, v in checked.items() if not k.startswith("duplicate")}
    unchecked["enable_duplicate_check"] = 0
    await send(unchecked)
    await send(unchecked)  # without the check a repeat is a new message
    assert len(cards()) == 6
    default = {k: v for k, v in checked.items() if k != "duplicate_check_interval"}
    await send(default)
    now[0] += 1799
    await send(default)
    assert len(cards()) == 7  # default interval 1800 s
    longest = {**checked, "duplicate_check_interval": 30 * 86400}
    await send(longest)
    now[0] += 4 * 3600
    await send(longest)
    assert len(cards()) == 9  # at most 4 hours


async def test_a_duplicate_refused_by_the_rate_limit_is_delivered_when_sent_again(sandbox):
    token = await sandbox.token()
    body = {
        "touser": "lisi",
        "agentid": dev_defaults.APP_AGENT_ID,
        "msgtype": "text",
        "text": {"content": "x"},
    }
    for _ in range(30):
        assert (await sandbox.post("/cgi-bin/message/send", body, access_token=token))[
            "errcode"
        ] == 0
    checked = {**body, "text": {"content": "加急"}, "enable_duplicate_check": 1}
    assert (await sandbox.post("/cgi-bin/message/send", checked, access_token=token))[
        "errcode"
    ] == 45009
    sandbox.state.send_times.clear()  # a minute later
    assert (await sandbox.post("/cgi-bin/message/send", checked, access_token=token))[
        "errcode"
    ] == 0
    assert [f["text"] for f in sandbox.state.feed if f["channel"] == "app"][-1] == "加急"


async def test_robot_webhook_20_per_minute(sandbox):
    codes = [
        (
            await sandbox.post(
                "/cgi-bin/webhook/send",
                {"msgtype": "text", "text": {"content": "x"}},
                key=dev_defaults.SANDBOX_ROBOT_KEY,
            )
        )["errcode"]
        for _ in range(21)
    ]
    assert codes == [0] * 20 + [45009]
    assert (
        await sandbox.post(
            "/cgi-bin/webhook/send", {"msgtype": "text", "text": {"content": "x"}}, key="nope"
        )
    )["errcode"] == 93000


async def test_faults_calls_log_and_delay(sandbox):
    await sandbox.post("/_sandbox/faults", {"path": "/cgi-bin/gettoken", "errcode": -1, "times": 2})
    params = {"corpid": dev_defaults.CORP_ID, "corpsecret": dev_defaults.APP_SECRET}
    codes = [(await sandbox.get("/cgi-bin/gettoken", **params))["errcode"] for _ in range(3)]
    assert codes == [-1, -1, 0]
    await sandbox.post("/_sandbox/faults", {"path": "/cgi-bin/gettoken", "delay_s": 0.3})
    started = time.monotonic()
    await sandbox.get("/cgi-bin/gettoken", **params)
    assert time.monotonic() - started >= 0.3
    await sandbox.post("/_sandbox/faults", {"path": "/cgi-bin/gettoken", "status": 503})
    async with sandbox.http.get(sandbox.base + "/cgi-bin/gettoken", params=params) as resp:
        assert resp.status == 503
    calls = (await sandbox.get("/_sandbox/calls", path="/cgi-bin/gettoken"))["calls"]
    assert len(calls) == 5 and calls[0]["query"]["corpsecret"] == "***"
    assert [c.get("errcode") for c in calls[:3]] == [-1, -1, 0]


async def test_kf_rules(sandbox):
    token = await sandbox.token(dev_defaults.KF_SECRET)
    kfid = sandbox.state.open_kfid
    text = {"touser": "wm1", "open_kfid": kfid, "msgtype": "text", "text": {"content": "你好"}}
    assert (await sandbox.post("/cgi-bin/kf/send_msg", text, access_token=token))[
        "errcode"
    ] == 95001  # never wrote
    assert (
        await sandbox.post(
            "/cgi-bin/kf/send_msg", {**text, "open_kfid": "wk_x"}, access_token=token
        )
    )["errcode"] == 95000
    await sandbox.post(
        "/_sandbox/guest/kf", {"external_userid": "wm1", "text": "在吗"}
    )  # no connector: still stored
    codes = [
        (await sandbox.post("/cgi-bin/kf/send_msg", text, access_token=token))["errcode"]
        for _ in range(6)
    ]
    assert codes == [0] * 5 + [95001]
    too_long = {**text, "text": {"content": "字" * 700}}
    await sandbox.post("/_sandbox/guest/kf", {"external_userid": "wm1", "text": "再问"})
    assert (await sandbox.post("/cgi-bin/kf/send_msg", too_long, access_token=token))[
        "errcode"
    ] == 45002
    trans = {
        "open_kfid": kfid,
        "external_userid": "wm1",
        "service_state": 3,
        "servicer_userid": "lisi",
    }
    assert (await sandbox.post("/cgi-bin/kf/service_state/trans", trans, access_token=token))[
        "msg_code"
    ]
    state = await sandbox.post(
        "/cgi-bin/kf/service_state/get",
        {"open_kfid": kfid, "external_userid": "wm1"},
        access_token=token,
    )
    assert (state["service_state"], state["servicer_userid"]) == (3, "lisi")
    assert (await sandbox.post("/cgi-bin/kf/send_msg", text, access_token=token))[
        "errcode"
    ] == 95018
    page = await sandbox.post(
        "/cgi-bin/kf/sync_msg", {"open_kfid": kfid, "limit": 1}, access_token=token
    )
    assert page["has_more"] == 1 and page["next_cursor"] == "c1"
    assert page["msg_list"][0]["text"]["content"] == "在吗" and page["msg_list"][0]["origin"] == 3
    bad = await sandbox.post(
        "/cgi-bin/kf/sync_msg", {"open_kfid": kfid, "token": "ENCbogus"}, access_token=token
    )
    assert bad["errcode"] == 95007


async def test_guest_message_becomes_an_encrypted_kf_callback_then_sync_msg(sandbox):
    receiver = Receiver()
    await receiver.start(sandbox.receiver_port)
    try:
        result = await sandbox.post(
            "/_sandbox/guest/kf", {"external_userid": "wm1", "text": "你好"}
        )
    finally:
        await receiver.stop()
    assert result["delivery"]["delivered"] and result["delivery"]["attempts"] == 1
    [(path, query, body)] = receiver.requests
    assert path == "/webhooks/wecom/kf"
    crypto = CallbackCrypto(dev_defaults.KF_TOKEN, dev_defaults.KF_AES_KEY, dev_defaults.CORP_ID)
    event = parse_xml(
        crypto.decrypt_xml(body, query["msg_signature"], query["timestamp"], query["nonce"])
    )
    assert event["Event"] == "kf_msg_or_event" and event["OpenKfId"] == sandbox.state.open_kfid
    token = await sandbox.token(dev_defaults.KF_SECRET)
    page = await sandbox.post(
        "/cgi-bin/kf/sync_msg",
        {"open_kfid": event["OpenKfId"], "token": event["Token"]},
        access_token=token,
    )
    assert page["msg_list"][0]["msgid"] == result["msgid"]


async def test_group_and_app_callbacks_decrypt_with_the_dev_secrets(sandbox):
    receiver = Receiver()
    await receiver.start(sandbox.receiver_port)
    try:
        skipped = await sandbox.post(
            "/_sandbox/guest/group", {"chatid": "g", "userid": "u", "text": "大家好"}
        )
        group = await sandbox.post(
            "/_sandbox/guest/group",
            {"chatid": "g", "userid": "u", "text": f"@{sandbox.state.aibot_name} 你好"},
        )
        await sandbox.post("/_sandbox/advisor/app", {"userid": "lisi", "text": "ack 1 <b>&"})
    finally:
        await receiver.stop()
    assert skipped["delivery"]["delivered"] is False
    assert group["delivery"]["delivered"]
    (p1, q1, b1), (p2, q2, b2) = receiver.requests
    aibot = CallbackCrypto(dev_defaults.AIBOT_TOKEN, dev_defaults.AIBOT_AES_KEY, "")
    msg = aibot.decrypt_json(b1, q1["msg_signature"], q1["timestamp"], q1["nonce"])
    assert p1.endswith("/aibot") and msg["chattype"] == "group" and msg["from"]["userid"] == "u"
    assert msg["response_url"].startswith(sandbox.base + "/cgi-bin/aibot/response?response_code=")
    app = CallbackCrypto(dev_defaults.APP_TOKEN, dev_defaults.APP_AES_KEY, dev_defaults.CORP_ID)
    xml = parse_xml(app.decrypt_xml(b2, q2["msg_signature"], q2["timestamp"], q2["nonce"]))
    assert p2.endswith("/app") and xml["Content"] == "ack 1 <b>&" and xml["FromUserName"] == "lisi"
    # the response_url works once
    reply = {"msgtype": "markdown", "markdown": {"content": "您好"}}
    async with sandbox.http.post(msg["response_url"], json=reply) as resp:
        assert (await resp.json())["errcode"] == 0
    async with sandbox.http.post(msg["response_url"], json=reply) as resp:
        assert (await resp.json())["errcode"] == 40058


async def test_callbacks_are_retried_like_wecom_on_5xx(sandbox):
    receiver = Receiver(statuses=(503, 500, 200))
    await receiver.start(sandbox.receiver_port)
    try:
        result = await sandbox.post("/_sandbox/advisor/app", {"userid": "lisi", "text": "hi"})
    finally:
        await receiver.stop()
    assert result["delivery"]["delivered"] and result["delivery"]["attempts"] == 3
    bodies = {r[2] for r in receiver.requests}
    assert len(receiver.requests) == 3 and len(bodies) == 1  # the same callback, retried


async def test_replays_deliver_the_identical_callback_again(sandbox):
    receiver = Receiver()
    await receiver.start(sandbox.receiver_port)
    try:
        kf = await sandbox.post(
            "/_sandbox/guest/kf", {"external_userid": "wm1", "text": "你好", "replays": 3}
        )
        group = await sandbox.post(
            "/_sandbox/guest/group",
            {
                "chatid": "g",
                "userid": "u",
                "text": f"@{sandbox.state.aibot_name} 在吗",
                "replays": 2,
            },
        )
    finally:
        await receiver.stop()
    assert [r["status"] for r in kf["delivery"]["replays"]] == [200, 200, 200]
    assert len(group["delivery"]["replays"]) == 2
    kf_requests = [r for r in receiver.requests if r[0].endswith("/kf")]
    aibot_requests = [r for r in receiver.requests if r[0].endswith("/aibot")]
    assert len(kf_requests) == 4 and len({(str(q), b) for _, q, b in kf_requests}) == 1
    assert len(aibot_requests) == 3 and len({(str(q), b) for _, q, b in aibot_requests}) == 1


async def test_delivery_reports_the_connector_answer_time(sandbox):
    """elapsed_ms is the connector's answer time as WeCom sees it: never less than the time the
    connector took (a lower bound, so no speed is asserted), and connector_ms is what the
    connector says of itself."""
    receiver = Receiver(delay_s=0.3, headers={HANDLE_MS_HEADER: "12.5"})
    await receiver.start(sandbox.receiver_port)
    try:
        kf = await sandbox.post(
            "/_sandbox/guest/kf", {"external_userid": "wm1", "text": "你好", "replays": 1}
        )
    finally:
        await receiver.stop()
    assert kf["delivery"]["elapsed_ms"] >= 300
    assert kf["delivery"]["replays"][0]["elapsed_ms"] >= 300
    assert kf["delivery"]["connector_ms"] == 12.5
    assert len(sandbox.state.deliveries) == 2
    assert all(d["elapsed_ms"] >= 300 for d in sandbox.state.deliveries)
    async with sandbox.http.post(
        sandbox.base + "/_sandbox/guest/kf",
        json={"external_userid": "wm1", "text": "x", "replays": "many"},
    ) as resp:
        assert resp.status == 400


async def test_unreachable_connector_is_reported(sandbox):
    result = await sandbox.post("/_sandbox/advisor/app", {"userid": "lisi", "text": "hi"})
    assert result["delivery"]["delivered"] is False and result["delivery"]["status"] is None


async def test_bad_requests_to_the_control_api(sandbox):
    async with sandbox.http.post(sandbox.base + "/_sandbox/guest/kf", data="not json") as resp:
        assert resp.status == 400
    async with sandbox.http.post(
        sandbox.base + "/_sandbox/guest/kf", json={"text": "no user"}
    ) as resp:
        assert resp.status == 400
    async with sandbox.http.post(
        sandbox.base + "/cgi-bin/message/send?access_token=x", data=b"{bad"
    ) as resp:
        assert (await resp.json())["errcode"] == 47001


async def test_chat_page_is_served(sandbox):
    async with sandbox.http.get(sandbox.base + "/") as resp:
        page = await resp.text()
    assert resp.status == 200 and "微信客服" in page and "/_sandbox/feed" in page

"""The stand-alone intake server: WeCom's callbacks are answered and stored by a process of its own,
which then tells Rasa (the channel's /webhooks/wecom/inbox route) whom to look at. Nothing is
lost when Rasa is down: the rows wait in the inbox and Rasa drains them when it starts."""

from __future__ import annotations

import contextlib

import aiohttp
from aiohttp import web

from bot.wecom.config import WeComConfig
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.intake_server import IntakeServer, RasaNotifier
from connectors.wecom import WeComInput
from tests.wecom.helpers import FakeRasa, free_port, kf_texts, run_sanic

GUEST = "wm_guest_001"


@contextlib.asynccontextmanager
async def run_intake(env, notify_url):
    server = IntakeServer(
        WeComConfig.load(), notify_url, sweep_interval_s=0, services=env.services()
    )
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(
        runner, "127.0.0.1", env.connector_port
    ).start()  # where the sandbox sends callbacks
    try:
        yield server
    finally:
        await runner.cleanup()


async def test_guest_message_through_the_intake_reaches_rasa_and_is_answered(env):
    rasa_port = free_port()
    rasa = FakeRasa()
    channel = WeComInput({}, services=env.services(), sweep_interval_s=0)
    async with run_sanic(channel, rasa, rasa_port):
        async with run_intake(env, f"http://127.0.0.1:{rasa_port}/webhooks/wecom/inbox") as intake:
            result = await env_post(
                env, "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "早餐几点"}
            )
            assert result["delivery"]["status"] == 200
            await wait_until(lambda: rasa.texts(), env)
            await channel.wait_idle()
            assert intake.notifier.failures == 0
    assert rasa.texts() == ["早餐几点"]
    assert kf_texts(await env.calls()) == ["收到：早餐几点"]


async def test_callbacks_are_acknowledged_and_kept_while_rasa_is_down(env):
    rasa_port = free_port()  # nothing listens there yet
    async with run_intake(env, f"http://127.0.0.1:{rasa_port}/webhooks/wecom/inbox") as intake:
        for text in ("第一条", "第二条"):
            result = await env_post(
                env, "/_sandbox/guest/kf", {"external_userid": GUEST, "text": text}
            )
            assert result["delivery"]["status"] == 200 and result["delivery"]["attempts"] == 1
        await wait_until(lambda: len(intake.services.inbox.all_sync()) == 2, env)
        assert [r.status for r in intake.services.inbox.all_sync()] == ["pending", "pending"]
        await wait_until(lambda: intake.notifier.failures > 0, env)
    # Rasa comes up: its channel drains the inbox at start, in order
    rasa = FakeRasa()
    channel = WeComInput({}, services=env.services(), sweep_interval_s=0)
    async with run_sanic(channel, rasa, rasa_port):
        await channel.wait_idle()
    assert rasa.texts() == ["第一条", "第二条"]
    assert kf_texts(await env.calls()) == ["收到：第一条", "收到：第二条"]


async def test_forged_and_malformed_callbacks_are_refused_by_the_intake(env):
    async with run_intake(env, "http://127.0.0.1:9/unused") as intake:
        base = f"http://127.0.0.1:{env.connector_port}/webhooks/wecom"
        sc = intake.config.surface("app")
        body, params = CallbackCrypto(sc.token, sc.aes_key, sc.receive_id).encrypt_xml(
            "<xml><MsgType>text</MsgType></xml>"
        )
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/app", params={**params, "msg_signature": "0" * 40}, data=body
            ) as resp:
                forged = resp.status
            async with http.post(f"{base}/app", params=params, data=b"not xml at all") as resp:
                malformed = resp.status
            async with http.get(f"{base}/") as resp:
                health = await resp.json()
        assert intake.services.inbox.all_sync() == []
    assert (forged, malformed) == (403, 400)
    assert health["surfaces"] == {"kf": True, "aibot": True, "app": True}


async def test_the_inbox_route_takes_sender_ids_only(connector):
    url = f"{connector.url}/webhooks/wecom/inbox"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=b"{not json") as resp:
            assert resp.status == 400
        async with http.post(url, json={"senders": [{"drop": "table"}]}) as resp:
            assert resp.status == 400
        async with http.post(url, json={"senders": ["kf:nobody"]}) as resp:
            assert resp.status == 200 and (await resp.json()) == {"kicked": 1}
    await connector.idle()
    assert connector.rasa.messages == []  # a kick only makes the channel look at its inbox


async def test_notifier_keeps_senders_until_rasa_took_them():
    got = []

    async def inbox(request):
        got.append((await request.json())["senders"])
        return web.json_response({"kicked": 1})

    app = web.Application()
    app.router.add_post("/webhooks/wecom/inbox", inbox)
    port = free_port()
    async with aiohttp.ClientSession() as session:
        notifier = RasaNotifier(f"http://127.0.0.1:{port}/webhooks/wecom/inbox", session)
        notifier.add("kf:a")
        notifier.add("kf:b")
        assert await notifier.flush() is False and notifier.pending == {"kf:a", "kf:b"}
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            assert await notifier.flush() is True
        finally:
            await runner.cleanup()
    assert got == [["kf:a", "kf:b"]] and notifier.pending == set()


async def env_post(env, path, body):
    async with env.http.post(f"{env.sandbox}{path}", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def wait_until(predicate, env, timeout=10.0):
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_kf_messages_sent_while_the_intake_was_down_are_pulled_when_it_starts(env):
    rasa_port = free_port()
    rasa = FakeRasa()
    channel = WeComInput({}, services=env.services(), sweep_interval_s=0)
    notify = f"http://127.0.0.1:{rasa_port}/webhooks/wecom/inbox"
    async with run_sanic(channel, rasa, rasa_port):
        async with run_intake(env, notify):
            await env_post(env, "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "第一条"})
            await wait_until(lambda: rasa.texts() == ["第一条"], env)
        # no intake: WeCom's notices go unanswered (the sandbox gives up after its retries)
        missed = await env_post(
            env, "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "第二条"}
        )
        assert missed["delivery"]["delivered"] is False
        async with run_intake(env, notify):
            await wait_until(lambda: rasa.texts() == ["第一条", "第二条"], env)
            await channel.wait_idle()
    assert kf_texts(await env.calls()) == ["收到：第一条", "收到：第二条"]


async def test_a_kf_notice_is_acknowledged_even_when_the_database_is_down(env, monkeypatch):
    async with run_intake(env, "http://127.0.0.1:9/unused") as intake:

        async def down(*args, **kwargs):
            raise ConnectionError("database unreachable")

        monkeypatch.setattr(intake.services.inbox, "save_kf_token", down)
        monkeypatch.setattr(intake.services.inbox, "kf_cursor", down)
        result = await env_post(
            env, "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "在吗"}
        )
        assert result["delivery"]["status"] == 200  # the message itself waits at WeCom
        await wait_until(lambda: intake.host.failed_syncs, env)  # and the sweep pulls it later
        assert list(intake.host.failed_syncs) == [env.state.open_kfid]

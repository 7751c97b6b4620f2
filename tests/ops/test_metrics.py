"""/metrics, /healthz, /readyz: the numbers move when a guest message flows, the queue depths
follow the database, and a process whose database is gone says it is not ready."""

from __future__ import annotations

import contextlib

from aiohttp import web
from sqlalchemy import create_engine

from bot.ops.http import add_aiohttp_routes, build
from bot.wecom.config import WeComConfig
from bot.wecom.db import get_engine
from bot.wecom.intake_server import IntakeServer
from connectors.wecom import WeComInput
from tests.ops.helpers import parse, sample
from tests.wecom.helpers import FakeRasa, free_port, post_json, run_sanic
from tests.wecom.test_client import fault
from tests.wecom.test_intake_server import env_post, wait_until

GUEST = "wm_metrics_guest"


@contextlib.asynccontextmanager
async def run_intake(env, notify_url, db_url):
    server = IntakeServer(
        WeComConfig.load(),
        notify_url,
        sweep_interval_s=0,
        services=env.services(),
        ops=build("intake", get_engine(db_url)),
    )
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", env.connector_port).start()
    try:
        yield f"http://127.0.0.1:{env.connector_port}"
    finally:
        await runner.cleanup()


async def scrape(env, base):
    async with env.http.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return parse(await resp.text())


async def test_a_guest_message_moves_the_counters_and_the_inbox_depth(env, db_url):
    rasa_port = free_port()  # Rasa is not up yet: the message waits in the inbox
    async with run_intake(
        env, f"http://127.0.0.1:{rasa_port}/webhooks/wecom/inbox", db_url
    ) as base:
        before = await scrape(env, base)
        result = await env_post(
            env, "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "请问几点退房"}
        )
        assert result["delivery"]["status"] == 200
        await wait_until(
            lambda: sample("concierge_wecom_messages_in_total", surface="kf")
            >= before.get('concierge_wecom_messages_in_total{surface="kf"}', 0) + 1,
            env,
        )
        waiting = await scrape(env, base)
        assert waiting["concierge_inbox_pending"] == 1
        assert waiting["concierge_queue_depths_up"] == 1
        key = 'concierge_wecom_callback_seconds_count{status="200",surface="kf"}'
        assert waiting[key] >= before.get(key, 0) + 1

        turns = sample("concierge_turn_seconds_count", surface="kf", outcome="done")
        sent = sample("concierge_wecom_messages_out_total", app="kf", status="sent")
        rasa = FakeRasa()
        channel = WeComInput({}, services=env.services(), sweep_interval_s=0)
        async with run_sanic(channel, rasa, rasa_port):  # drains the inbox at start
            await wait_until(lambda: rasa.texts(), env)
            await channel.wait_idle()
        after = await scrape(env, base)
    assert rasa.texts() == ["请问几点退房"]
    assert after["concierge_inbox_pending"] == 0
    assert sample("concierge_turn_seconds_count", surface="kf", outcome="done") == turns + 1
    assert sample("concierge_wecom_messages_out_total", app="kf", status="sent") == sent + 1


async def test_errcodes_and_token_fetches_are_counted(env):
    s = env.services()
    tokens = sample("concierge_wecom_token_refreshes_total", app="app")
    errors = sample("concierge_wecom_errcodes_total", path="/cgi-bin/message/send", errcode="40003")
    dead = sample("concierge_wecom_messages_out_total", app="app", status="dead")
    await fault(env, path="/cgi-bin/message/send", errcode=40003, times=1)
    assert (await s.app.send_text("nobody", "请确认")).status == "dead"
    assert (
        sample("concierge_wecom_errcodes_total", path="/cgi-bin/message/send", errcode="40003")
        == errors + 1
    )
    assert sample("concierge_wecom_messages_out_total", app="app", status="dead") == dead + 1
    assert sample("concierge_wecom_token_refreshes_total", app="app") == tokens + 1
    # WeCom says the token expired (42001): it is fetched again, and counted again
    await post_json(env.http, f"{env.sandbox}/_sandbox/tokens/expire", {})
    assert (await s.app.send_text("lisi", "第二条")).ok
    assert sample("concierge_wecom_token_refreshes_total", app="app") == tokens + 2
    assert (
        sample("concierge_wecom_errcodes_total", path="/cgi-bin/message/send", errcode="42001") >= 1
    )


async def test_outbox_and_sla_depths_are_read_from_the_database(env, db_url):
    s = env.services()
    await fault(env, path="/cgi-bin/message/send", errcode=40003, times=1)
    await s.app.send_text("nobody", "x")
    exposition, _ = build("worker", get_engine(db_url))
    values = parse(exposition.render_sync().decode())
    assert values["concierge_outbox_dead"] == 1
    assert values["concierge_outbox_retrying"] == 0
    assert values["concierge_sla_steps_due"] == 0
    assert values["concierge_queue_depths_up"] == 1


async def test_readiness_fails_when_the_database_is_unreachable(env, db_url):
    down = create_engine(
        "postgresql+psycopg2://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    app = web.Application()
    add_aiohttp_routes(app, *build("intake", down))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        base = f"http://127.0.0.1:{port}"
        async with env.http.get(f"{base}/healthz") as resp:
            assert resp.status == 200  # alive: a restart would not help
        async with env.http.get(f"{base}/readyz") as resp:
            assert resp.status == 503
            body = await resp.json()
            assert body["ready"] is False and "unreachable" in body["checks"]["database"]
        async with env.http.get(f"{base}/metrics") as resp:  # still served, depths marked down
            values = parse(await resp.text())
            assert values["concierge_queue_depths_up"] == 0
            assert "concierge_inbox_pending" not in values
    finally:
        await runner.cleanup()
    ready, checks = await build("intake", get_engine(db_url))[1].run()
    assert ready and checks == {"database": "ok"}

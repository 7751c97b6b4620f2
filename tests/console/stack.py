"""The console on the WeCom sandbox, for the browser tests (and the README's screenshots):

guest (sandbox 微信客服) → the real WeCom channel (connectors.wecom) → a fake Rasa that opens a
ticket for a complaint like the flow does and honours pause/resume → the real paging worker pages
advisor_li through the sandbox → the console (real app, real paging service, WeCom messenger:
replies go Rasa API → WeCom channel → kf/send_msg in the sandbox) on a free port.

Only Rasa is played (its message handler and the three HTTP API calls paging makes); Rasa's own
behaviour is tested in tests/e2e.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.console.app import make_app
from bot.paging.channels import WeComMessenger
from bot.paging.handoff import HandoffController, RasaAPI
from bot.settings import get_settings
from tests.console.conftest import Console, build_console
from tests.wecom.helpers import (
    free_port,
    kf_texts,
    post_json,
    run_sandbox,
    run_sanic,
    sandbox_calls,
)

TOKEN = "console-browser-token"
# Who the complaining guests are (the flow would know them from the CRM).
GUESTS = {"kf:wm_second_guest": ("陈先生", "铂金")}


class FakeRasaServer:
    """Rasa's message handler and its tracker API, as paging and the console use them."""

    def __init__(self, crm):
        self.crm = crm
        self.paused: set = set()
        self.events: dict = {}
        self.channel = None

    def _log(self, sender: str, event: dict) -> None:
        self.events.setdefault(sender, []).append({**event, "timestamp": time.time()})

    async def handle_message(self, message) -> None:
        sender, text = message.sender_id, message.text or ""
        self._log(sender, {"event": "user", "text": text})
        if sender in self.paused:
            return  # a paused conversation records the message and answers nothing
        if "烟味" in text or "太吵" in text:
            name, tier = GUESTS.get(sender, ("林晓", "金卡"))
            self.crm.get_or_create_guest(sender)
            self.crm.update_guest(sender, name=name, tier=tier)
            self.crm.create_ticket(
                sender,
                kind="complaint",
                category="噪音" if "太吵" in text else "卫生",
                description=text,
                sla_class="complaint_routine",
            )
            reply = "非常抱歉给您带来不好的体验，已通知值班顾问，10分钟内会联系您。"
        else:
            reply = f"收到：{text}"
        self._log(sender, {"event": "bot", "text": reply})
        await message.output_channel.send_text_message(sender, reply)

    async def tracker_events(self, request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        if request.query.get("token") != TOKEN:
            return web.Response(status=401)
        for event in await request.json():
            if event["event"] == "pause":
                self.paused.add(sender)
            elif event["event"] == "resume":
                self.paused.discard(sender)
            elif event["event"] == "bot":
                self._log(sender, event)
                if request.query.get("execute_side_effects") == "true":
                    out = self.channel.get_output_channel()
                    await out.send_text_message(sender, event["text"])
        return web.json_response({"sender_id": sender, "paused": sender in self.paused})

    async def tracker(self, request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        if request.query.get("token") != TOKEN:
            return web.Response(status=401)
        return web.json_response(
            {
                "sender_id": sender,
                "paused": sender in self.paused,
                "events": self.events.get(sender, []),
            }
        )


@dataclass
class Stack:
    console: Console
    url: str
    sandbox: str
    state: Any
    rasa: FakeRasaServer
    http: aiohttp.ClientSession
    channel: Any

    async def guest_says(self, external_userid: str, text: str) -> None:
        await post_json(
            self.http,
            f"{self.sandbox}/_sandbox/guest/kf",
            {"external_userid": external_userid, "text": text},
        )
        await self.channel.wait_idle(10)

    async def calls(self, path=None) -> list:
        return await sandbox_calls(self.http, self.sandbox, path)

    async def kf_texts(self) -> list[str]:
        return kf_texts(await self.calls())


@contextlib.asynccontextmanager
async def console_stack(db_url: str, monkeypatch):
    from bot.crm.store import CRMStore
    from bot.wecom.services import WeComServices
    from bot.wecom.api.token import MemoryTokenStore
    from connectors.wecom import WeComInput

    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    from bot.crm.db import upgrade

    upgrade(db_url)
    fake = FakeRasaServer(CRMStore(db_url))
    rasa_app = web.Application()
    rasa_app.router.add_post("/conversations/{sender}/tracker/events", fake.tracker_events)
    rasa_app.router.add_get("/conversations/{sender}/tracker", fake.tracker)
    rasa_runner = web.AppRunner(rasa_app, access_log=None)
    await rasa_runner.setup()
    rasa_port = free_port()
    await web.TCPSite(rasa_runner, "127.0.0.1", rasa_port).start()

    connector_port, console_port = free_port(), free_port()
    console_url = f"http://127.0.0.1:{console_port}"
    async with run_sandbox(
        connector_url=f"http://127.0.0.1:{connector_port}", callback_retries=1, callback_timeout_s=5
    ) as (sandbox, state):
        monkeypatch.setenv("WECOM_API_BASE", sandbox)
        monkeypatch.setenv("WECOM_OAUTH_BASE", sandbox)
        get_settings.cache_clear()
        services = WeComServices(token_store=MemoryTokenStore(), timeout_s=3.0)
        channel = WeComInput({}, services=services, sweep_interval_s=0)
        fake.channel = channel
        rasa_api = RasaAPI(f"http://127.0.0.1:{rasa_port}", TOKEN, timeout_s=3)
        console = build_console(
            db_url,
            messenger=WeComMessenger(rasa_api, services=services),
            handoff=HandoffController(rasa_api, wecom=services, crm=fake.crm),
            wecom_app_client=lambda: services.app_client,
            base_url=console_url,
            clock=lambda: dt.datetime.now(dt.timezone.utc),
            epoch=_RealEpoch(),
        )
        runner = web.AppRunner(make_app(console.deps), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", console_port).start()
        try:
            async with (
                run_sanic(channel, fake.handle_message, connector_port),
                aiohttp.ClientSession() as http,
            ):
                yield Stack(console, console_url, sandbox, state, fake, http, channel)
        finally:
            await runner.cleanup()
            await services.close()
            await rasa_runner.cleanup()


class _RealEpoch:
    """time.time() plus a skew the test can add (to expire sessions)."""

    def __init__(self):
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew

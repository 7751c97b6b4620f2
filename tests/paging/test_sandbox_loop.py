"""The full loop through the WeCom sandbox, with the real WeCom channel, client and worker:

guest complaint (微信客服) → textcard page in the sandbox's message/send calls → the advisor's
接单 through the app callback → the guest is told who took it → 接管 silences the bot and moves
the 微信客服 session to the advisor → 交还 resumes it → 解决 → the guest is told and asked to rate
→ the guest's "5" is stored.

Rasa itself is played by a small fake: its message handler (what `agent.handle_message` does for
the channel) opens the ticket like the complaint flow would and honours pause/resume; its HTTP API
(`/conversations/{id}/tracker/events`) pauses, resumes and sends `bot` events through the channel's
output channel, as `execute_side_effects=true&output_channel=wecom` makes the real Rasa do.
"""

from __future__ import annotations

import datetime as dt

import aiohttp
import pytest
from aiohttp import web

from bot.crm.db import upgrade
from bot.crm.store import CRMStore
from bot.paging.hooks import paging_guest_hook
from bot.wecom.surfaces.app import AppCommandRouter
from bot.paging.channels import WeComMessenger
from bot.paging.context import GuestContext
from bot.paging.handoff import HandoffController, RasaAPI
from bot.paging.service import PagingService
from bot.paging.store import PagingStore
from bot.paging.worker import PagingWorker
from bot.settings import get_settings
from tests.paging.conftest import FakeClock
from tests.wecom.helpers import (
    free_port,
    kf_texts,
    post_json,
    run_sandbox,
    run_sanic,
    sandbox_calls,
)

GUEST = "wm_guest_loop"
SENDER = f"kf:{GUEST}"


class FakeRasaServer:
    """Rasa's message handler and the HTTP API calls paging makes, on one object."""

    def __init__(self, crm: CRMStore):
        self.crm = crm
        self.paused: set = set()
        self.heard: list = []
        self.channel = None
        self.api_calls: list = []

    async def handle_message(self, message) -> None:
        self.heard.append((message.sender_id, message.text))
        if message.sender_id in self.paused:
            return  # a paused conversation records the message, answers nothing
        if "烟味" in (message.text or ""):
            self.crm.get_or_create_guest(message.sender_id)
            self.crm.update_guest(message.sender_id, name="林晓", tier="金卡")
            self.crm.create_ticket(
                message.sender_id,
                kind="complaint",
                category="卫生",
                description=message.text,
                sla_class="complaint_routine",
            )
            await message.output_channel.send_text_message(
                message.sender_id, "非常抱歉给您带来不好的体验，已通知值班顾问，10分钟内会联系您。"
            )
        else:
            await message.output_channel.send_text_message(
                message.sender_id, f"收到：{message.text}"
            )

    async def events(self, request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        assert request.query.get("token") == "test-token"
        events = await request.json()
        self.api_calls.append((sender, [e["event"] for e in events], dict(request.query)))
        for event in events:
            if event["event"] == "pause":
                self.paused.add(sender)
            elif event["event"] == "resume":
                self.paused.discard(sender)
            elif event["event"] == "bot" and request.query.get("execute_side_effects") == "true":
                assert request.query.get("output_channel") == "wecom"
                await self.channel.get_output_channel().send_text_message(sender, event["text"])
        return web.json_response({"sender_id": sender, "paused": sender in self.paused})

    async def tracker(self, request: web.Request) -> web.Response:
        sender = request.match_info["sender"]
        events = [{"event": "user", "text": t} for s, t in self.heard if s == sender]
        return web.json_response(
            {"sender_id": sender, "paused": sender in self.paused, "events": events}
        )


@pytest.fixture
def loop_db(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    upgrade(url)
    return url


async def test_complaint_page_ack_takeover_handback_resolve_rating(loop_db, policy, monkeypatch):
    from bot.wecom.services import WeComServices
    from bot.wecom.api.token import MemoryTokenStore
    from connectors.wecom import WeComInput

    crm = CRMStore(loop_db)
    fake = FakeRasaServer(crm)
    rasa_app = web.Application()
    rasa_app.router.add_post("/conversations/{sender}/tracker/events", fake.events)
    rasa_app.router.add_get("/conversations/{sender}/tracker", fake.tracker)
    runner = web.AppRunner(rasa_app, access_log=None)
    await runner.setup()
    rasa_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", rasa_port).start()

    connector_port = free_port()
    async with run_sandbox(
        connector_url=f"http://127.0.0.1:{connector_port}", callback_retries=1, callback_timeout_s=5
    ) as (sandbox, state):
        monkeypatch.setenv("WECOM_API_BASE", sandbox)
        get_settings.cache_clear()
        services = WeComServices(token_store=MemoryTokenStore(), timeout_s=2.0)
        store = PagingStore(loop_db)
        clock = FakeClock(dt.datetime.now(dt.timezone.utc))
        rasa_api = RasaAPI(f"http://127.0.0.1:{rasa_port}", "test-token", timeout_s=3)
        messenger = WeComMessenger(rasa_api, services=services)
        context = GuestContext(crm, rasa_api.last_user_messages)
        worker = PagingWorker(store, policy, messenger, context=context, clock=clock, worker_id="w")
        service = PagingService(
            store,
            policy,
            messenger,
            crm=crm,
            context=context,
            clock=clock,
            handoff=HandoffController(rasa_api, wecom=services, crm=crm),
        )
        # As the Rasa server's composition root (bot/wiring.py) attaches paging.
        channel = WeComInput(
            {},
            services=services,
            sweep_interval_s=0,
            app_router=AppCommandRouter([service.on_app_message]),
            hooks=[paging_guest_hook(service)],
        )
        fake.channel = channel
        try:
            async with (
                run_sanic(channel, fake.handle_message, connector_port),
                aiohttp.ClientSession() as http,
            ):

                async def post(path, body):
                    await post_json(http, f"{sandbox}{path}", body)
                    await channel.wait_idle(10)

                async def calls(path=None):
                    return await sandbox_calls(http, sandbox, path)

                async def app_sends(userid):
                    return [
                        c["body"]
                        for c in await calls("/cgi-bin/message/send")
                        if c["body"].get("touser") == userid
                    ]

                # 1. The guest complains in 微信客服; the flow opens a ticket.
                await post(
                    "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "房间里有很重的烟味"}
                )
                ticket = crm.tickets(SENDER)[0]
                clock.set(ticket.created_at)

                # 2. The worker pages the on-duty advisor with a textcard, through the sandbox.
                assert (await worker.tick()).fired == 1
                case = store.clock_for("ticket", ticket.id)
                cards = [b for b in await app_sends("advisor_li") if b["msgtype"] == "textcard"]
                assert len(cards) == 1
                card = cards[0]["textcard"]
                assert f"#{case.id}" in card["title"] and "林晓" in card["title"]
                assert "房间里有很重的烟味" in card["description"]  # what is asked / last message
                assert f"/cases/{case.id}?sig=" in card["url"]

                # 3. The advisor answers 接单 in the app; confirmed, and the guest is told.
                clock.advance(2)
                await post(
                    "/_sandbox/advisor/app", {"userid": "advisor_li", "text": f"接单 {case.id}"}
                )
                confirmations = [
                    b["text"]["content"]
                    for b in await app_sends("advisor_li")
                    if b["msgtype"] == "text"
                ]
                assert confirmations[-1].startswith(f"已接单 #{case.id}")
                assert any("李顾问已接手" in t for t in kf_texts(await calls()))
                assert crm.ticket(ticket.id).status == "acknowledged"
                # No escalation will follow.
                clock.advance(30)
                await worker.tick()
                assert await app_sends("supervisor_wang") == []

                # 4. 接管: the bot goes silent, the 微信客服 session moves to the advisor.
                await post(
                    "/_sandbox/advisor/app", {"userid": "advisor_li", "text": f"接管 {case.id}"}
                )
                assert SENDER in fake.paused
                trans = [c["body"] for c in await calls("/cgi-bin/kf/service_state/trans")]
                assert (
                    trans[-1]["service_state"] == 3 and trans[-1]["servicer_userid"] == "advisor_li"
                )
                assert any("我是李顾问" in t for t in kf_texts(await calls()))
                before = kf_texts(await calls())
                await post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "还要多久？"})
                assert (SENDER, "还要多久？") in fake.heard  # Rasa still records it
                assert kf_texts(await calls()) == before  # but nobody answers for the bot

                # 5. 交还: the bot resumes and says so.
                await post(
                    "/_sandbox/advisor/app", {"userid": "advisor_li", "text": f"交还 {case.id}"}
                )
                assert SENDER not in fake.paused
                trans = [c["body"] for c in await calls("/cgi-bin/kf/service_state/trans")]
                assert trans[-1]["service_state"] == 1
                assert "礼宾助手继续为您服务" in kf_texts(await calls())[-1]

                # 6. 解决: the guest gets the resolution and the rating request.
                await post(
                    "/_sandbox/advisor/app",
                    {
                        "userid": "advisor_li",
                        "text": f"解决 {case.id} 已为您换到无烟楼层并赠送下午茶",
                    },
                )
                told = kf_texts(await calls())[-1]
                assert "已处理完毕：已为您换到无烟楼层并赠送下午茶" in told and "1-5" in told
                assert crm.ticket(ticket.id).status == "resolved"

                # 7. The guest rates; stored, thanked, not passed to the NLU.
                heard = len(fake.heard)
                await post("/_sandbox/guest/kf", {"external_userid": GUEST, "text": "5"})
                assert "感谢您的评分" in kf_texts(await calls())[-1]
                assert len(fake.heard) == heard
                assert crm.ticket(ticket.id).rating == 5
                assert store.clock(case.id).rating == 5
                actions = {a.action for a in crm.audit_entries()}
                assert {
                    "sla.acknowledge",
                    "sla.take_over",
                    "sla.hand_back",
                    "sla.resolve",
                    "sla.rating",
                } <= actions
        finally:
            await services.close()
            await runner.cleanup()
            store.close()
            crm.close()

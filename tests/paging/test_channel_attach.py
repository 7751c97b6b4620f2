"""Paging in the Rasa process: the guest hook stores ratings and forwards the rest; the composition
root adds the advisors' commands to the channel's router, or leaves paging off when the policy is
invalid; the case page is served only with a valid signature."""

from __future__ import annotations

from bot.paging.case_pages import CasePages
from bot.paging.hooks import paging_guest_hook
from bot.wecom.surfaces.app import AppCommandRouter, AppMessage


class _Service:
    def __init__(self, thanks=None, fail=False):
        self.thanks = thanks
        self.fail = fail
        self.forwarded = []

    async def maybe_record_rating(self, sender, text):
        if self.fail:
            raise RuntimeError("paging database down")
        return self.thanks if text == "5" else None

    async def forward_guest_message(self, sender, text):
        if self.fail:
            raise RuntimeError("paging database down")
        self.forwarded.append((sender, text))
        return True


async def test_hook_stores_ratings_and_forwards_the_rest():
    service = _Service(thanks="谢谢")
    hook = paging_guest_hook(service)
    assert await hook("kf:g", "5") == "谢谢"
    assert await hook("kf:g", "还有问题") is None
    assert service.forwarded == [("kf:g", "还有问题")]


async def test_a_failing_paging_check_passes_the_message_on(caplog):
    hook = paging_guest_hook(_Service(fail=True))
    assert await hook("kf:g", "5") is None
    assert "rating check for kf:g failed" in caplog.text


async def test_an_invalid_policy_leaves_paging_off(monkeypatch, tmp_path, caplog):
    from bot.settings import get_settings
    from bot.wiring import attach_paging

    bad = tmp_path / "sla.yml"
    bad.write_text("classes: [not, a, mapping]\n", encoding="utf-8")
    monkeypatch.setenv("SLA_POLICY_FILE", str(bad))
    get_settings.cache_clear()
    router = AppCommandRouter()
    try:
        assert await attach_paging(None, router) == []
    finally:
        get_settings.cache_clear()
    assert len(router) == 0 and "paging commands are OFF" in caplog.text


async def test_the_router_offers_a_message_to_each_handler_until_one_takes_it():
    seen = []

    def first(message):
        seen.append(("first", message.text))
        return False

    async def second(message):
        seen.append(("second", message.text))
        return message.text.startswith("接单")

    router = AppCommandRouter([first, second])
    assert await router.dispatch(AppMessage(userid="advisor_li", msgtype="text", text="接单 3"))
    assert not await router.dispatch(AppMessage(userid="advisor_li", msgtype="text", text="你好"))
    assert seen == [
        ("first", "接单 3"),
        ("second", "接单 3"),
        ("first", "你好"),
        ("second", "你好"),
    ]


async def test_case_page_needs_the_signature_and_shows_the_case(
    crm, paging, policy, messenger, clock, make_worker
):
    from bot.paging.links import CaseLinks
    from bot.paging.service import PagingService
    from tests.paging.conftest import complaint, new_guest

    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    clock.set(ticket.created_at)
    await make_worker().tick()
    case = paging.clock_for("ticket", ticket.id)
    pages = CasePages(PagingService(paging, policy, messenger, crm=crm, clock=clock))
    links = CaseLinks.from_settings()
    assert (await pages.case_page(case.id, "forged")).status == 403
    assert (await pages.case_page(999, links.sign(999, "advisor_li"))).status == 404
    page = await pages.case_page(case.id, links.sign(case.id, "advisor_li"))
    body = page.body.decode()
    assert page.status == 200 and f"#{case.id} 普通投诉" in body and "林晓" in body
    assert "房间有很重的烟味" in body and f"接单 {case.id}" in body and "page" in body
    assert "海鲜过敏" not in body
    [view] = crm.audit_entries(action="case.view")
    assert view.actor == "advisor:advisor_li" and view.detail["case"] == case.id


async def test_the_paging_channel_serves_the_case_page_over_http(
    crm, paging, policy, messenger, clock, make_worker
):
    from urllib.parse import urlsplit

    import aiohttp
    from sanic import Sanic

    from bot.paging.links import CaseLinks
    from bot.paging.service import PagingService
    from connectors.paging import PagingChannel
    from tests.paging.conftest import complaint, new_guest
    from tests.wecom.helpers import serve_sanic

    ticket = complaint(crm, new_guest(crm))
    clock.set(ticket.created_at)
    await make_worker().tick()
    case = paging.clock_for("ticket", ticket.id)
    channel = PagingChannel(
        CasePages(PagingService(paging, policy, messenger, crm=crm, clock=clock))
    )

    def build(name):
        app = Sanic(name)
        app.blueprint(channel.blueprint(None), url_prefix="/webhooks/paging")
        return app

    sig = CaseLinks.from_settings().sign(case.id, "advisor_li")
    async with serve_sanic(build) as (_, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/webhooks/paging/cases/{case.id}", params={"sig": sig}) as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            assert f"#{case.id}" in await resp.text()
        async with http.get(
            f"{url}/webhooks/paging/cases/{case.id}", params={"sig": "forged"}
        ) as resp:
            assert (resp.status, await resp.text()) == (403, "链接无效或已过期")
        # the page's own link, which also names its step, opens the case
        [card] = messenger.to("app", "advisor_li")
        link = urlsplit(card["url"])
        assert "&step=" in link.query
        async with http.get(f"{url}{link.path}?{link.query}") as resp:
            assert resp.status == 200 and f"#{case.id}" in await resp.text()

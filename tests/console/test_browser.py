"""The console in a real browser: Playwright driving Debian's Chromium (`apt-get install
chromium`; .ci/run installs it) against the console on the WeCom sandbox (tests/console/stack.py).

Set CONSOLE_SCREENSHOTS=DIR to also save the screenshots the README shows (docs/console/).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.console.stack import console_stack

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GUEST = "wm_browser_guest"
SENDER = f"kf:{GUEST}"
SHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


def _require_browser():
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        import playwright  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed (requirements.txt)")
        pytest.skip("playwright is not installed")


@contextlib.asynccontextmanager
async def browser_on_stack(tmp_path, monkeypatch):
    """Chromium and the console stack, both started inside the test (Sanic, which serves the
    WeCom channel, swaps the event loop policy: async fixtures would not survive it)."""
    _require_browser()
    from playwright.async_api import async_playwright

    # Chromium first: once Sanic has swapped the policy, asyncio cannot start subprocesses.
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            async with console_stack(f"sqlite:///{tmp_path / 'browser.db'}", monkeypatch) as stack:
                yield chromium, stack
        finally:
            await chromium.close()


async def _shot(page, name: str, *, full: bool = True) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full)


async def _link_sign_in(page, stack, userid: str) -> None:
    token = stack.console.deps.auth.login_token(userid)
    await page.goto(f"{stack.url}/login/link?token={token}")
    await page.get_by_role("button", name="登录员工后台").click()
    await page.wait_for_load_state()


async def _paged_complaint(stack, guest=GUEST, text="房间里有很重的烟味，换了也一样") -> int:
    await stack.guest_says(guest, text)
    ticket = stack.console.crm.tickets(f"kf:{guest}")[-1]
    return await stack.console.page(ticket.id)


async def test_advisor_signs_in_with_wecom_takes_over_replies_and_resolves(tmp_path, monkeypatch):
    async with browser_on_stack(tmp_path, monkeypatch) as (browser, stack):
        from playwright.async_api import expect

        case = await _paged_complaint(stack)
        # The worker paged advisor_li in WeCom (a textcard through the sandbox).
        cards = [
            c["body"]
            for c in await stack.calls("/cgi-bin/message/send")
            if c["body"].get("msgtype") == "textcard"
        ]
        assert cards and cards[0]["touser"] == "advisor_li"

        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        # Anonymous: sent to sign-in; WeCom login through the sandbox's authorize page.
        await page.goto(f"{stack.url}/advisor")
        assert "/login" in page.url
        await _shot(page, "login")
        await page.get_by_role("link", name="企业微信登录").click()
        assert page.url.startswith(stack.sandbox + "/connect/oauth2/authorize")
        await page.get_by_label("成员账号").fill("advisor_li")
        await page.get_by_role("button", name="确认登录").click()
        await page.wait_for_load_state()
        # (The browser keeps the authorize URL's #wechat_redirect through the redirects.)
        assert page.url.split("#")[0] == f"{stack.url}/advisor", await page.inner_text("body")

        # The queue shows the complaint paged a moment ago, with its deadline counting down.
        row = page.locator(".case-row", has_text=f"#{case} 普通投诉")
        await expect(row).to_be_visible()
        await expect(row.locator(".sla")).to_have_text(re.compile(r"接单剩 \d+分\d+秒"))
        await expect(row).to_contain_text("林晓")

        # A second complaint arrives while the queue is open: it appears without a reload.
        second = await _paged_complaint(stack, "wm_second_guest", "隔壁房间太吵了睡不着")
        await expect(page.locator(".case-row", has_text=f"#{second} ")).to_be_visible(timeout=15000)
        await _shot(page, "queue")

        # The case: conversation from the tracker, the profile, then take it over.
        await row.click()
        await page.wait_for_url(f"{stack.url}/advisor/cases/{case}")
        await expect(page.locator("#conversation")).to_contain_text("房间里有很重的烟味")
        await expect(page.locator(".profile")).to_contain_text("金卡")
        await page.get_by_role("button", name="接管对话").click()
        await expect(page.locator(".flash")).to_contain_text("已接管")
        assert SENDER in stack.rasa.paused  # the bot is silent for the guest
        # The 微信客服 session stays with the API (state 1), so the console's replies can be sent.
        trans = [c["body"] for c in await stack.calls("/cgi-bin/kf/service_state/trans")]
        assert not [t for t in trans if t.get("service_state") == 3]
        assert any("我是李顾问" in t for t in await stack.kf_texts())

        # The guest writes; the bot stays quiet and the message shows up in the console.
        before = await stack.kf_texts()
        await stack.guest_says(GUEST, "还要等多久？")
        assert await stack.kf_texts() == before
        await expect(page.locator("#conversation")).to_contain_text("还要等多久？", timeout=10000)

        # A canned reply, edited, sent through WeCom: the sandbox records the kf/send_msg.
        await page.get_by_role("button", name="致歉并跟进").click()
        await page.locator("#reply-text").fill("非常抱歉，已为您换到18楼无烟房，行李员马上到。")
        await page.get_by_role("button", name="发送").click()
        await expect(page.locator(".flash")).to_contain_text("已发送给客人")
        assert "李顾问：非常抱歉，已为您换到18楼无烟房，行李员马上到。" in await stack.kf_texts()
        await expect(page.locator("#conversation")).to_contain_text("已为您换到18楼无烟房")
        await _shot(page, "case")

        # Resolve: the guest gets the resolution and the rating request; the bot is back.
        await page.locator("#resolve-text").fill("已换无烟房并赠送下午茶")
        await page.get_by_role("button", name="解决并结案").click()
        await expect(page.locator(".flash")).to_contain_text(f"已结案 #{case}")
        assert any("已换无烟房并赠送下午茶" in t for t in await stack.kf_texts())
        assert SENDER not in stack.rasa.paused
        assert stack.console.store.clock(case).state == "resolved"
        assert stack.console.crm.tickets(SENDER)[0].status == "resolved"

        # On a phone.
        phone = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        await phone.context.add_cookies(await page.context.cookies())
        await phone.goto(f"{stack.url}/advisor/cases/{second}")
        await expect(phone.locator("h1")).to_contain_text(f"#{second}")
        await _shot(phone, "case-phone")


async def test_marketer_link_is_refused_on_advisor(tmp_path, monkeypatch):
    async with browser_on_stack(tmp_path, monkeypatch) as (browser, stack):
        page = await browser.new_page()
        await _link_sign_in(page, stack, "marketer_sun")
        response = await page.goto(f"{stack.url}/advisor")
        assert response.status == 403
        assert "无权访问" in await page.inner_text("main")


async def test_advisor_is_refused_another_propertys_case(tmp_path, monkeypatch):
    async with browser_on_stack(tmp_path, monkeypatch) as (browser, stack):
        case = await _paged_complaint(stack)
        page = await browser.new_page()
        await _link_sign_in(page, stack, "advisor_xu")  # serves shanghai-bund-hotel only
        assert f"#{case} " not in await page.inner_text("main")
        response = await page.goto(f"{stack.url}/advisor/cases/{case}")
        assert response.status == 403
        assert "不负责的门店" in await page.inner_text("main")
        assert "林晓" not in await page.content()


async def test_an_expired_session_is_sent_to_sign_in(tmp_path, monkeypatch):
    async with browser_on_stack(tmp_path, monkeypatch) as (browser, stack):
        from playwright.async_api import expect

        page = await browser.new_page()
        await _link_sign_in(page, stack, "advisor_li")
        assert page.url.endswith("/advisor")
        stack.console.deps.epoch.skew = stack.console.deps.auth.session_ttl_s + 5
        # The queue's next poll finds the session gone and htmx takes the page to sign-in.
        await page.wait_for_url(re.compile(r"/login\?.*expired=1"), timeout=15000)
        await expect(page.locator(".warn")).to_contain_text("登录已过期")


async def test_supervisor_reports_page(tmp_path, monkeypatch):
    async with browser_on_stack(tmp_path, monkeypatch) as (browser, stack):
        from playwright.async_api import expect

        case = await _paged_complaint(stack)
        await stack.console.deps.paging.act("advisor_li", case, "ack")
        await stack.console.deps.paging.act("advisor_li", case, "resolve", "已换房")
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await _link_sign_in(page, stack, "supervisor_wang")
        await page.goto(f"{stack.url}/reports")
        await expect(page.locator("svg.chart")).to_have_count(6)
        await expect(page.locator("main")).to_contain_text("普通投诉")
        async with page.expect_download() as info:
            await page.get_by_role("link", name="下载 CSV").first.click()
        download = await info.value
        assert download.suggested_filename == "classes-30d.csv"
        await _shot(page, "reports")


@contextlib.asynccontextmanager
async def _replica():
    from aiohttp import web

    from tests.console.conftest import FakeReplica
    from tests.wecom.helpers import free_port

    replica = FakeReplica()
    runner = web.AppRunner(replica.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield replica, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_marketer_creates_and_previews_a_campaign(tmp_path, monkeypatch):
    from playwright.async_api import expect

    from tests.console.conftest import attach_areas

    async with (
        browser_on_stack(tmp_path, monkeypatch) as (browser, stack),
        _replica() as (replica, replica_url),
    ):
        attach_areas(stack.console, tmp_path, replica_url, replica)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await _link_sign_in(page, stack, "marketer_sun")
        assert page.url.endswith("/marketing")
        count = page.locator("tr", has_text="gold_and_above").locator("td.count")
        await expect(count).to_have_text(re.compile(r"^\d+$"))
        await _shot(page, "marketing")
        await page.get_by_label("活动名称").fill("12月会员日")
        await page.get_by_label("发给分群").select_option("gold_and_above")
        await page.get_by_label("内容模板").fill(
            "{{ name }}您好！今天是{{ tier }}会员日，会员价再9折。"
        )
        await page.get_by_role("button", name="保存并预览").click()
        await expect(page.locator(".flash")).to_contain_text("已保存活动")
        await expect(page.locator("h1")).to_contain_text("12月会员日")
        # The rendered text for a real guest, and why the others are left out.
        samples = page.locator("blockquote.sample")
        if await samples.count():
            await expect(samples.first).to_contain_text("会员日，会员价再9折")
            assert "{{" not in await samples.first.inner_text()
        await expect(page.locator("ul.left-out")).to_contain_text("不在分群内")
        await _shot(page, "campaign-preview")
        # A template that would not render is refused with the reason, nothing saved.
        await page.goto(f"{stack.url}/marketing")
        await page.get_by_label("活动名称").fill("坏模板")
        await page.get_by_label("内容模板").fill("{{ name ")
        await page.get_by_role("button", name="保存并预览").click()
        await expect(page.locator(".flash")).to_contain_text("未保存")
        names = [c["name"] for c in stack.console.deps.extras["marketing"].campaigns.list()]
        assert names == ["12月会员日"]


async def test_admin_labels_an_inbox_message_and_deploys_a_model(tmp_path, monkeypatch):
    from playwright.async_api import expect

    from tests.console.conftest import add_inbox_item, attach_areas

    async with (
        browser_on_stack(tmp_path, monkeypatch) as (browser, stack),
        _replica() as (replica, replica_url),
    ):
        versions, paths = attach_areas(stack.console, tmp_path, replica_url, replica)
        add_inbox_item(stack.console.crm.engine, "泳池边能点外卖进来吃吗")
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await _link_sign_in(page, stack, "admin_qian")
        await page.goto(f"{stack.url}/admin")
        item = page.locator(".inbox-item", has_text="泳池边能点外卖进来吃吗")
        await expect(item).to_be_visible()
        await _shot(page, "admin")
        await item.locator("select").select_option("ask_amenity")
        await item.get_by_role("button", name="标注").click()
        # (The first label loads Rasa's YAML reader to check the file: give it time.)
        await expect(page.locator(".flash")).to_contain_text("已标注为 ask_amenity", timeout=60000)
        written = (paths.nlu_dir / "amenities.yml").read_text(encoding="utf-8")
        assert "泳池边能点外卖进来吃吗" in written
        await expect(page.locator(".inbox-item")).to_have_count(0)

        await page.get_by_role("button", name=f"发布 {versions[1]}").click()
        await expect(page.locator(".flash")).to_contain_text(f"已发布 {versions[1]}")
        loop = stack.console.deps.extras["training"]
        assert loop.registry.deployed_version() == versions[1]
        assert replica.fingerprints[replica.loaded] == "fp2"
        await page.get_by_role("button", name="回滚到上一个版本").click()
        await expect(page.locator(".flash")).to_contain_text(f"已回滚到 {versions[0]}")
        assert loop.registry.deployed_version() == versions[0]
        actions = [
            e.action
            for e in stack.console.crm.audit_entries(limit=30)
            if e.actor == "console:admin_qian"
        ]
        assert {"nlu.label", "model.deploy", "model.rollback"} <= set(actions)

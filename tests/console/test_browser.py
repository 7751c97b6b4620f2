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
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
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
            async with console_stack(f"sqlite:///{tmp_path / 'browser.db'}",
                                     monkeypatch) as stack:
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
        cards = [c["body"] for c in await stack.calls("/cgi-bin/message/send")
                 if c["body"].get("msgtype") == "textcard"]
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
        assert SENDER in stack.rasa.paused                      # the bot is silent for the guest
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
        await expect(page.locator("svg.chart")).to_have_count(5)
        await expect(page.locator("main")).to_contain_text("普通投诉")
        async with page.expect_download() as info:
            await page.get_by_role("link", name="下载 CSV").first.click()
        download = await info.value
        assert download.suggested_filename == "classes-30d.csv"
        await _shot(page, "reports")

"""The staff console's "done when", against a running `make run` (all processes, real Rasa):

1. a guest complains in 微信客服 through the sandbox; the worker pages the advisor on duty;
2. `concierge staff login-link advisor_li` opens /advisor in Chromium: the complaint is there,
   with its deadline;
3. taking it over in the browser pauses the bot for that guest (Rasa's tracker says paused);
4. the reply typed in the console reaches the guest in the sandbox (kf/send_msg);
5. a marketer's link gets 403 on /advisor; an anonymous request is sent to sign-in.

    .venv/bin/python scripts/console_demo.py [--console http://localhost:8000] [--shots DIR]

Prints each step and exits non-zero at the first one that does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid

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


def http(method: str, url: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def link(userid: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "staff", "login-link", userid],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


async def main() -> int:
    from playwright.async_api import async_playwright, expect

    parser = argparse.ArgumentParser()
    parser.add_argument("--console", default="http://localhost:8000")
    parser.add_argument("--sandbox", default="http://127.0.0.1:8800")
    parser.add_argument("--rasa", default="http://127.0.0.1:5005")
    parser.add_argument("--shots")
    args = parser.parse_args()
    token = os.environ.get("RASA_AUTH_TOKEN", "dev-only-token")
    guest = f"wm_demo_{uuid.uuid4().hex[:6]}"
    sender = f"kf:{guest}"
    text = "房间里有很重的烟味，换了房间也一样，太难受了"

    http("POST", f"{args.sandbox}/_sandbox/guest/kf", {"external_userid": guest, "text": text})
    step(f"guest {sender} complained: {text}")
    page_card = None
    for _ in range(60):
        _, calls = http("GET", f"{args.sandbox}/_sandbox/calls?path=/cgi-bin/message/send")
        cards = [
            c["body"]
            for c in calls["calls"]
            if c["body"].get("msgtype") == "textcard"
            and text[:6] in c["body"]["textcard"]["description"]
        ]
        if cards:
            page_card = cards[-1]
            break
        time.sleep(1)
    if page_card is None:
        step("FAIL: no page reached an advisor in 60 s")
        return 1
    step(f"paged {page_card['touser']}: {page_card['textcard']['title']}")

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        anon = await page.goto(f"{args.console}/advisor")
        step(f"anonymous /advisor -> {page.url} (HTTP {anon.status})")
        assert "/login" in page.url
        await page.goto(link(page_card["touser"]))
        await page.get_by_role("button", name="登录员工后台").click()
        await page.wait_for_url(f"{args.console}/advisor")
        case_id = re.search(r"#(\d+)", page_card["textcard"]["title"]).group(1)
        row = page.locator(".case-row", has_text=f"#{case_id} ")
        await expect(row).to_be_visible()
        step(f"/advisor shows: {' | '.join((await row.inner_text()).split(chr(10)))}")
        if args.shots:
            await page.screenshot(path=os.path.join(args.shots, "demo-queue.png"), full_page=True)
        await row.click()
        await page.get_by_role("button", name="接管对话").click()
        await expect(page.locator(".flash")).to_contain_text("已接管")
        step(f"took over: {await page.locator('.flash').inner_text()}")
        _, tracker = http(
            "GET",
            f"{args.rasa}/conversations/{sender}/tracker" f"?token={token}&include_events=NONE",
        )
        step(f"Rasa tracker paused = {tracker.get('paused')}")
        assert tracker.get("paused") is True
        reply = "您好，我是李顾问，已为您安排18楼无烟房，行李员马上到。"
        await page.locator("#reply-text").fill(reply)
        await page.get_by_role("button", name="发送").click()
        await expect(page.locator(".flash")).to_contain_text("已发送给客人")
        got = None
        for _ in range(30):
            _, calls = http("GET", f"{args.sandbox}/_sandbox/calls?path=/cgi-bin/kf/send_msg")
            sent = [
                c
                for c in calls["calls"]
                if c["body"].get("touser") == guest
                and reply in json.dumps(c["body"], ensure_ascii=False)
            ]
            if sent:
                got = sent[-1]
                break
            time.sleep(0.5)
        if got is None:
            step("FAIL: the reply did not reach kf/send_msg")
            return 1
        step(
            f"sandbox kf/send_msg to {guest}: {got['body']['text']['content']} "
            f"(errcode {got.get('errcode')})"
        )
        if args.shots:
            await page.screenshot(path=os.path.join(args.shots, "demo-case.png"), full_page=True)

        marketer = await browser.new_page()
        await marketer.goto(link("marketer_sun"))
        await marketer.get_by_role("button", name="登录员工后台").click()
        resp = await marketer.goto(f"{args.console}/advisor")
        step(f"marketer_sun /advisor -> HTTP {resp.status}")
        assert resp.status == 403
        await browser.close()
    step("done: every step held")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""WeCom web login through the sandbox's OAuth stand-in (bot/sandbox/oauth.py): the happy path,
a forged or missing state, a used or unknown code, someone who is not on the staff list, and an
open redirect in `next`."""

from __future__ import annotations

import dataclasses
import re

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from bot.console.app import make_app
from bot.wecom import dev_defaults
from bot.wecom.api.client import WeComClient
from bot.wecom.api.token import MemoryTokenStore
from tests.console.conftest import build_console
from tests.wecom.helpers import run_sandbox


async def _authorize(http, url: str, userid: str) -> str:
    """What the browser does on the sandbox's page: returns the redirect back to the console."""
    async with http.get(url) as page:
        html = await page.text()
        assert page.status == 200, html
    fields = dict(re.findall(r"name='(\w+)' value='([^']*)'", html))
    async with http.post(
        url.split("?")[0], data={**fields, "userid": userid}, allow_redirects=False
    ) as resp:
        assert resp.status == 302
        return resp.headers["Location"]


async def _setup(tmp_path, sandbox):
    client = WeComClient(
        "app",
        dev_defaults.CORP_ID,
        dev_defaults.APP_SECRET,
        sandbox,
        token_store=MemoryTokenStore(),
        timeout_s=3,
    )
    console = build_console(f"sqlite:///{tmp_path / 'login.db'}", wecom_app_client=lambda: client)
    console.deps.settings = dataclasses.replace(console.deps.settings, wecom_oauth_base=sandbox)
    return console, client


async def test_wecom_login_round_trip_and_its_failures(tmp_path):
    async with run_sandbox() as (sandbox, _state), aiohttp.ClientSession() as http:
        console, app_client = await _setup(tmp_path, sandbox)
        async with TestClient(TestServer(make_app(console.deps))) as c:
            start = await c.get(
                "/login/wecom", params={"next": "//evil.example/x"}, allow_redirects=False
            )
            authorize = start.headers["Location"]
            assert authorize.startswith(f"{sandbox}/connect/oauth2/authorize")
            assert URL(authorize).query["scope"] == "snsapi_privateinfo"
            back = URL(await _authorize(http, authorize, "advisor_li"))
            callback = back.path + "?" + back.query_string

            # A callback without the state cookie this browser got is refused.
            async with TestClient(TestServer(make_app(console.deps))) as stranger:
                resp = await stranger.get(callback, allow_redirects=False)
                assert resp.status == 400

            resp = await c.get(callback, allow_redirects=False)
            assert resp.status == 303 and resp.headers["Location"] == "/advisor"  # not //evil
            assert (await c.get("/advisor", allow_redirects=False)).status == 200
            entries = console.crm.audit_entries(action="console.sign_in")
            assert entries[0].actor == "console:advisor_li"
            assert entries[0].detail == {"how": "wecom"}

            # The same code again (a replayed callback): WeCom says 40029, sign-in refused.
            start = await c.get("/login/wecom", allow_redirects=False)
            state = URL(start.headers["Location"]).query["state"]
            code = back.query["code"]
            resp = await c.get("/login/wecom/callback", params={"code": code, "state": state})
            assert resp.status == 403 and "已失效" in await resp.text()

            # A member of the corp who is not staff.
            start = await c.get("/login/wecom", allow_redirects=False)
            back = URL(await _authorize(http, start.headers["Location"], "housekeeping_01"))
            resp = await c.get(back.path + "?" + back.query_string)
            assert resp.status == 403 and "不在员工名单" in await resp.text()
        await app_client.close()


async def test_sandbox_authorize_refuses_a_wrong_corp_or_scope():
    async with run_sandbox() as (sandbox, _state), aiohttp.ClientSession() as http:
        base = f"{sandbox}/connect/oauth2/authorize"
        good = {
            "appid": dev_defaults.CORP_ID,
            "redirect_uri": "http://127.0.0.1:1/cb",
            "response_type": "code",
            "scope": "snsapi_privateinfo",
            "state": "s",
        }
        for bad in (
            {"appid": "ww_other"},
            {"scope": "snsapi_userinfo"},
            {"redirect_uri": "javascript:alert(1)"},
        ):
            async with http.get(base, params={**good, **bad}) as resp:
                assert resp.status == 400
        async with http.get(
            f"{sandbox}/cgi-bin/auth/getuserinfo", params={"code": "nope", "access_token": "x"}
        ) as resp:
            assert (await resp.json())["errcode"] in (40014, 40029)

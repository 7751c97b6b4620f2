"""The sandbox's stand-in for WeCom web login (OAuth for self-built apps).

- `GET /connect/oauth2/authorize?appid=CORPID&redirect_uri=...&response_type=code
  &scope=snsapi_base|snsapi_privateinfo&agentid=...&state=...`: where WeCom would authenticate
  the member, a page asks which member to sign in as (this is a developer's sandbox);
- `POST /connect/oauth2/authorize`: issues a one-time code (5 minutes, as WeCom) and redirects to
  `redirect_uri?code=CODE&state=STATE`;
- `GET /cgi-bin/auth/getuserinfo?access_token=&code=`: the app's token exchanges the code for
  `{"userid": ...}`; an unknown, used or expired code is errcode 40029, as WeCom answers.

Never run in production (the preflight refuses a WECOM_OAUTH_BASE on this machine).
"""

from __future__ import annotations

import html
import secrets
import time
from typing import Any, Dict
from urllib.parse import urlencode, urlparse

from aiohttp import web

CODE_TTL_S = 300
CODES = web.AppKey("oauth_codes", dict)
USERID_MAX = 64


def _page(body: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        content_type="text/html",
        charset="utf-8",
        text=(
            "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            "<title>企业微信登录（沙箱）</title><style>body{font-family:sans-serif;max-width:28em;"
            "margin:2em auto;padding:0 1em}input,button{font-size:1.1em;padding:.4em}</style>"
            f"</head><body>{body}</body></html>"
        ),
    )


def _check_request(params, corp_id: str) -> str | None:
    if params.get("appid") != corp_id:
        return "appid 与企业 ID 不符"
    if params.get("response_type", "code") != "code":
        return "response_type 必须是 code"
    if params.get("scope") not in ("snsapi_base", "snsapi_privateinfo"):
        return "scope 必须是 snsapi_base 或 snsapi_privateinfo"
    uri = urlparse(params.get("redirect_uri") or "")
    if uri.scheme not in ("http", "https") or not uri.netloc:
        return "redirect_uri 无效"
    return None


async def authorize_page(request: web.Request) -> web.Response:
    from bot.sandbox.common import state_of as _state

    params = request.query
    problem = _check_request(params, _state(request).secrets.corp_id)
    if problem:
        return _page(f"<h2>授权请求无效</h2><p>{html.escape(problem)}</p>", status=400)
    hidden = "".join(
        f"<input type='hidden' name='{k}' value='{html.escape(params.get(k, ''))}'>"
        for k in ("appid", "redirect_uri", "scope", "state", "agentid")
    )
    return _page(
        "<h2>企业微信登录（本地沙箱）</h2><p>真实环境中企业微信会确认您的身份；"
        "沙箱里请输入要登录的成员账号（userid）。</p>"
        f"<form method='post'>{hidden}<p><label>成员账号 <input name='userid' "
        "autocomplete='off' required maxlength='64'></label></p>"
        "<p><button type='submit'>确认登录</button></p></form>"
    )


async def authorize_submit(request: web.Request) -> web.Response:
    from bot.sandbox.common import state_of as _state

    form = await request.post()
    problem = _check_request(form, _state(request).secrets.corp_id)
    userid = (form.get("userid") or "").strip()
    if not problem and (not userid or len(userid) > USERID_MAX):
        problem = "请填写成员账号"
    if problem:
        return _page(f"<h2>授权请求无效</h2><p>{html.escape(problem)}</p>", status=400)
    codes = request.app[CODES]
    now = time.time()
    for stale in [c for c, info in codes.items() if now - info["issued"] > CODE_TTL_S]:
        codes.pop(stale, None)
    code = secrets.token_urlsafe(24)
    codes[code] = {"userid": userid, "issued": now, "used": False}
    uri = form["redirect_uri"]
    sep = "&" if "?" in uri else "?"
    raise web.HTTPFound(f"{uri}{sep}{urlencode({'code': code, 'state': form.get('state', '')})}")


async def getuserinfo(request: web.Request) -> Dict[str, Any]:
    from bot.sandbox.common import ApiError

    info = request.app[CODES].get(request.query.get("code") or "")
    if info is None or info["used"] or time.time() - info["issued"] > CODE_TTL_S:
        raise ApiError(40029, "invalid code")
    info["used"] = True
    return {"userid": info["userid"], "user_ticket": secrets.token_urlsafe(16), "expires_in": 1800}


def register(app: web.Application) -> None:
    app[CODES] = {}
    app.router.add_get("/connect/oauth2/authorize", authorize_page)
    app.router.add_post("/connect/oauth2/authorize", authorize_submit)
    app.router.add_get("/cgi-bin/auth/getuserinfo", getuserinfo)

"""The staff console's aiohttp application: sign-in, the session/CSRF middleware, role checks,
and the areas (advisor, reports; marketing and admin when their services are there).

Every request except /healthz, /static and the sign-in pages needs a session: a page request
without one is redirected to /login (with `next`), an htmx request gets 401 + `HX-Redirect`.
Every POST must carry the session's CSRF token. Roles are looked up in the staff directory on
every request, so taking someone off the roster ends their access at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional
from urllib.parse import quote, urlparse

from aiohttp import web

from bot.console.auth import SESSION_COOKIE, STATE_COOKIE, BadToken
from bot.console.deps import STATIC_DIR, ConsoleDeps
from bot.console.staff import StaffMember

# The request helpers every area uses live in bot.console.web (the areas import them from there,
# not from this module, which imports the areas); re-exported for existing imports.
from bot.console.web import DEPS, Handler, deps_of, member_of, refuse, render, require  # noqa: F401

log = logging.getLogger(__name__)

PUBLIC_PREFIXES = ("/static/", "/login")
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics")  # bot/ops: no guest data
EXPIRED_TEXT = "登录已过期，请重新登录"


def _is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _to_login(request: web.Request, reason: Optional[str]) -> web.StreamResponse:
    target = "/login"
    query = []
    # Back to the page the person was on (for an htmx poll: the page, not the fragment).
    here = request.path_qs if request.method == "GET" and not _is_htmx(request) else None
    if _is_htmx(request) and request.headers.get("HX-Current-URL"):
        current = urlparse(request.headers["HX-Current-URL"])
        here = current.path + (f"?{current.query}" if current.query else "")
    if _safe_next(here) and here not in ("/", "/logout"):
        query.append("next=" + quote(here, safe=""))
    if reason == "expired":
        query.append("expired=1")
    if query:
        target += "?" + "&".join(query)
    if _is_htmx(request) or request.method != "GET":
        response = web.Response(status=401, text=EXPIRED_TEXT, headers={"HX-Redirect": target})
    else:
        response = web.HTTPFound(target)
    # The stale cookie stays: every request made with it is refused the same way, so a second
    # poll in flight still says "expired" rather than "not signed in".
    return response


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    deps = deps_of(request)
    try:
        session = deps.auth.read_session(request.cookies.get(SESSION_COOKIE))
    except BadToken as exc:
        return _to_login(request, exc.reason)
    member = deps.staff.member(session.userid)
    request["session"] = session
    if member is None:
        response = refuse(request, "您已不在员工名单中，不能使用员工后台。")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response
    request["member"] = member
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        token = request.headers.get("X-CSRF-Token")
        if token is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            token = (await request.post()).get("csrf")
        if not deps.auth.check_csrf(session, token):
            log.warning(
                "console: CSRF check failed for %s %s (%s)",
                request.method,
                request.path,
                session.userid,
            )
            return refuse(request, "表单已失效（安全校验未通过），请刷新页面后重试。")
    return await handler(request)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


# ---- sign-in -----------------------------------------------------------------------------------


def _safe_next(value: Optional[str]) -> Optional[str]:
    """Only a path on this site (no scheme, no host, no //evil.example)."""
    if not value:
        return None
    parsed = urlparse(value)
    if parsed.scheme or parsed.netloc or not value.startswith("/") or value.startswith("//"):
        return None
    return value


def _cookie_secure(deps: ConsoleDeps) -> bool:
    return deps.base_url.startswith("https://")


def _signed_in(
    request: web.Request, member: StaffMember, how: str, nxt: Optional[str]
) -> web.StreamResponse:
    deps = deps_of(request)
    session, cookie = deps.auth.new_session(member.userid)
    response = web.HTTPSeeOther(_safe_next(nxt) or member.home)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=deps.auth.session_ttl_s,
        httponly=True,
        samesite="Lax",
        path="/",
        secure=_cookie_secure(deps),
    )
    response.del_cookie(STATE_COOKIE, path="/login")
    log.info("console: %s signed in (%s) as %s", member.userid, how, ",".join(member.roles))
    return response


async def _audit_sign_in(
    deps: ConsoleDeps, userid: str, how: str, subject_type: Optional[str], subject_id: Optional[str]
) -> None:
    await asyncio.to_thread(
        deps.crm.record_audit,
        f"console:{userid}",
        "console.sign_in",
        subject_type,
        subject_id,
        {"how": how},
    )


async def login_page(request: web.Request) -> web.StreamResponse:
    return render(
        request,
        "console/login.html",
        expired=request.query.get("expired") == "1",
        next=_safe_next(request.query.get("next")) or "",
        error=request.query.get("error"),
    )


async def login_wecom(request: web.Request) -> web.StreamResponse:
    from bot.console.wecom_login import authorize_url

    deps = deps_of(request)
    state, cookie = deps.auth.oauth_state()
    nxt = _safe_next(request.query.get("next")) or ""
    redirect = f"{deps.base_url}/login/wecom/callback" + (
        f"?next={quote(nxt, safe='')}" if nxt else ""
    )
    url = authorize_url(
        deps.settings.wecom_oauth_base,
        deps.settings.wecom_corp_id,
        deps.settings.wecom.get("APP_AGENT_ID"),
        redirect,
        state,
    )
    response = web.HTTPFound(url)
    response.set_cookie(
        STATE_COOKIE,
        cookie,
        max_age=600,
        httponly=True,
        samesite="Lax",
        path="/login",
        secure=_cookie_secure(deps),
    )
    return response


async def login_wecom_callback(request: web.Request) -> web.StreamResponse:
    from bot.console.wecom_login import LoginFailed, userid_for_code

    deps = deps_of(request)
    try:
        deps.auth.check_oauth_state(request.query.get("state"), request.cookies.get(STATE_COOKIE))
    except BadToken:
        return render(
            request,
            "console/login.html",
            status=400,
            expired=False,
            next="",
            error="登录请求已失效，请重新点击“企业微信登录”。",
        )
    try:
        userid = await userid_for_code(deps.wecom_app_client(), request.query.get("code") or "")
    except LoginFailed as exc:
        return render(
            request, "console/login.html", status=403, expired=False, next="", error=str(exc)
        )
    member = deps.staff.member(userid)
    if member is None:
        return render(
            request,
            "console/login.html",
            status=403,
            expired=False,
            next="",
            error=f"企业微信账号 {userid} 不在员工名单中，请联系管理员。",
        )
    await _audit_sign_in(deps, userid, "wecom", None, None)
    return _signed_in(request, member, "wecom", request.query.get("next"))


async def login_link_page(request: web.Request) -> web.StreamResponse:
    # A GET only shows the button: link previews and scanners must not use up the link.
    return render(request, "console/login_link.html", token=request.query.get("token") or "")


async def login_link_use(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    token = (await request.post()).get("token") or ""

    def used_before(nonce: str) -> bool:
        return bool(
            deps.crm.audit_entries(
                subject_type="login_link", subject_id=nonce, action="console.sign_in", limit=1
            )
        )

    try:
        userid, nonce = await asyncio.to_thread(
            deps.auth.open_login_token, token, used_before=used_before
        )
    except BadToken as exc:
        words = {"expired": "登录链接已过期", "used": "登录链接已使用过"}
        return render(
            request,
            "console/login.html",
            status=403,
            expired=False,
            next="",
            error=words.get(exc.reason, "登录链接无效") + "，请重新获取。",
        )
    member = deps.staff.member(userid)
    if member is None:
        return render(
            request,
            "console/login.html",
            status=403,
            expired=False,
            next="",
            error=f"{userid} 不在员工名单中，请联系管理员。",
        )
    await _audit_sign_in(deps, userid, "login_link", "login_link", nonce)
    return _signed_in(request, member, "login link", None)


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(member_of(request).home)


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok", "service": "console"})


# ---- the application ---------------------------------------------------------------------------


def make_app(deps: ConsoleDeps) -> web.Application:
    from bot.console import admin, advisor, areas, files, reports

    app = web.Application(
        middlewares=[security_headers, session_middleware], client_max_size=256 * 1024
    )
    app[DEPS] = deps
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/login", login_page)
    app.router.add_get("/login/wecom", login_wecom)
    app.router.add_get("/login/wecom/callback", login_wecom_callback)
    app.router.add_get("/login/link", login_link_page)
    app.router.add_post("/login/link", login_link_use)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", home)
    app.router.add_static("/static/", STATIC_DIR, append_version=True)
    advisor.add_routes(app)
    reports.add_routes(app)
    areas.add_routes(app)
    admin.add_routes(app)
    files.add_routes(app)
    return app

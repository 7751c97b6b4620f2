"""What every console page handler uses: the app's dependencies, the signed-in member, template
rendering with the session's CSRF token, refusals and the role check. Kept apart from
bot.console.app (which builds the app and imports the areas) so the areas need not import it."""

from __future__ import annotations

import functools
from typing import Awaitable, Callable

from aiohttp import web

from bot.console.deps import ConsoleDeps
from bot.console.staff import ROLE_NAMES, StaffMember

DEPS = web.AppKey("console_deps", ConsoleDeps)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def deps_of(request: web.Request) -> ConsoleDeps:
    return request.app[DEPS]


def member_of(request: web.Request) -> StaffMember:
    return request["member"]


# ---- rendering ---------------------------------------------------------------------------------


def render(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    deps = deps_of(request)
    member = request.get("member")
    session = request.get("session")
    page = deps.templates.get_template(template).render(
        member=member,
        role_names=ROLE_NAMES,
        path=request.path,
        csrf=deps.auth.csrf_token(session) if session else "",
        session_left_s=session.remaining_s(deps.epoch()) if session else None,
        **context,
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")


def refuse(request: web.Request, message: str, status: int = 403) -> web.Response:
    return render(request, "console/error.html", status=status, message=message, code=status)


def require(area: str) -> Callable[[Handler], Handler]:
    """Only members whose roles may open `area` (bot.console.staff.AREAS); others get 403."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not member_of(request).may(area):
                return refuse(request, "您的角色不能打开这个页面。")
            return await handler(request)

        guarded.area = area  # type: ignore[attr-defined]
        return guarded

    return wrap

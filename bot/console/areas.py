"""/marketing and /admin: the pages on the marketing (segments, campaigns, touchpoints) and
training (NLU inbox, models) services. Role checks are here; the pages show what those services
offer in this build (`ConsoleDeps.extras`), and say plainly when a service is not installed.
"""
from __future__ import annotations

from aiohttp import web

from bot.console.app import deps_of, render, require


@require("marketing")
async def marketing_page(request: web.Request) -> web.StreamResponse:
    service = deps_of(request).extras.get("marketing")
    return render(request, "console/area.html", title="市场营销", service=service,
                  missing="营销服务（分群、群发、触达）尚未在本版本中提供。")


@require("admin")
async def admin_page(request: web.Request) -> web.StreamResponse:
    service = deps_of(request).extras.get("training")
    return render(request, "console/area.html", title="系统管理", service=service,
                  missing="训练服务（待标注消息、模型版本、发布与回滚）尚未在本版本中提供。")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/marketing", marketing_page)
    app.router.add_get("/admin", admin_page)

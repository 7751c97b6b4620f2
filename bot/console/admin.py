"""/admin on the training loop (bot.training.service.TrainingLoop): the NLU inbox with
labelling, model versions with their figures and the gate, train, deploy (with an override
reason when the gate refuses), roll back. Every call blocks (SQL, files, subprocesses, HTTP to
Rasa), so each runs in a worker thread; the service writes the audit log (`console:<userid>`).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from bot.console.web import deps_of, member_of, render, require
from bot.console.advisor import _flash, _render_with_flash

log = logging.getLogger(__name__)


def _loop(request: web.Request):
    return deps_of(request).extras.get("training")


def _actor(request: web.Request) -> str:
    return f"console:{member_of(request).userid}"


def _back() -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/admin")


@require("admin")
async def admin_page(request: web.Request) -> web.StreamResponse:
    loop = _loop(request)
    if loop is None:
        return render(
            request,
            "console/area.html",
            title="系统管理",
            service=None,
            missing="训练服务未配置，无法显示待标注消息和模型版本。",
        )
    from bot.nlu.labels import domain_intents

    def read():
        return (
            loop.inbox.items(limit=50),
            loop.registry.versions(),
            loop.registry.deployments(limit=10),
            sorted(domain_intents(loop.inbox.paths.domain)),
        )

    try:
        items, versions, deployments, intents = await asyncio.to_thread(read)
    except Exception as exc:  # the training tables or files are not usable: say so
        log.exception("admin page")
        return render(
            request,
            "console/area.html",
            title="系统管理",
            service=None,
            missing=f"训练服务暂时不可用：{exc}",
        )
    return _render_with_flash(
        request,
        "console/admin.html",
        items=items,
        versions=versions,
        deployments=deployments,
        intents=intents,
    )


async def _do(request: web.Request, work, done) -> web.StreamResponse:
    loop = _loop(request)
    if loop is None:
        return _flash(_back(), "训练服务未配置。")
    try:
        result = await asyncio.to_thread(work, loop)
    except (LookupError, ValueError, RuntimeError) as exc:  # refused: the message says why
        return _flash(_back(), f"未完成：{exc}")
    return _flash(_back(), done(result))


@require("admin")
async def label(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    item_id, intent = form.get("item"), str(form.get("intent") or "")
    action = str(form.get("action") or "label")
    if not str(item_id or "").isdigit():
        return _flash(_back(), "未完成：没有这条消息。")
    actor = _actor(request)
    if action == "discard":
        return await _do(
            request,
            lambda t: t.inbox.discard(int(item_id), actor=actor),
            lambda r: f"已忽略：“{r['text']}”",
        )
    return await _do(
        request,
        lambda t: t.inbox.label(int(item_id), intent, actor=actor),
        lambda r: f"已标注为 {intent}：“{r['text']}”（写入 {r['label']['file']}）",
    )


@require("admin")
async def train(request: web.Request) -> web.StreamResponse:
    actor = _actor(request)
    note = str((await request.post()).get("note") or "").strip()[:200] or None
    return await _do(
        request,
        lambda t: t.train(actor=actor, note=note),
        lambda r: f"已开始训练 {r['version']}，完成后在下方显示评估结果。",
    )


@require("admin")
async def deploy(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    version = str(form.get("version") or "")
    override = str(form.get("override") or "").strip() or None
    actor = _actor(request)

    def done(r):
        text = f"已发布 {r['version']}（之前：{r['previous'] or '无'}）"
        return text + ("，门槛未通过，已按说明强制发布" if r.get("overridden") else "")

    return await _do(
        request, lambda t: t.deployer.deploy(version, actor=actor, override=override), done
    )


@require("admin")
async def rollback(request: web.Request) -> web.StreamResponse:
    actor = _actor(request)
    return await _do(
        request,
        lambda t: t.deployer.rollback(actor=actor),
        lambda r: f"已回滚到 {r['version']}（之前：{r['previous']}）",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin", admin_page)
    app.router.add_post("/admin/inbox/label", label)
    app.router.add_post("/admin/models/train", train)
    app.router.add_post("/admin/models/deploy", deploy)
    app.router.add_post("/admin/models/rollback", rollback)

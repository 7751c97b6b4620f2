"""/marketing on the marketing services (bot.marketing.runtime.Marketing): the named segments
with live counts, a campaign editor (name, segment, Jinja2 template, schedule) with the rendered
preview and the left-out reasons, the campaign list with the delivery report, and the
touchpoint sequences switched on/off per property. The services validate and audit; their
calls block (SQL), so they run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging

import yaml
from aiohttp import web

from bot.console.advisor import _flash, _render_with_flash
from bot.console.web import deps_of, member_of, refuse, render, require

log = logging.getLogger(__name__)

# Why a guest of the segment does not get the message (bot.marketing.audience reasons).
REASONS = {
    "no_consent": "未同意接收营销（或已退订）",
    "no_wecom_identity": "没有企业微信身份",
    "not_a_contact": "不是顾问的企业微信联系人",
    "outside_48h_window": "微信客服48小时窗口已关闭",
    "over_cap": "本月群发次数已满",
    "quiet_hours": "免打扰时段",
    "outside_segment": "不在分群内",
}
STATUS = {
    "scheduled": "已排期",
    "sending": "发送中",
    "sent": "已发送",
    "cancelled": "已取消",
    "failed": "失败",
}
TOUCHPOINTS = {
    "t_minus_3": "到店前3天",
    "t_plus_7": "离店后7天（满意度）",
    "birthday": "生日祝福",
    "anniversary": "纪念日祝福",
    "winback": "沉睡唤回",
}
MAX_TEMPLATE = 2000


def _m(request: web.Request):
    return deps_of(request).extras.get("marketing")


def _actor(request: web.Request) -> str:
    return f"console:{member_of(request).userid}"


def _china(iso) -> str:
    """An ISO time from the services as China time, "12-08 10:00"."""
    import datetime as dt

    from bot.crm.store import CHINA_TZ

    if not iso:
        return "—"
    moment = dt.datetime.fromisoformat(str(iso))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(CHINA_TZ).strftime("%m-%d %H:%M")


def _segment_names() -> list[str]:
    from bot.marketing.segments_service import SEGMENTS_DIR

    return sorted(p.stem for p in SEGMENTS_DIR.glob("*.yml")) if SEGMENTS_DIR.exists() else []


@require("marketing")
async def marketing_page(request: web.Request) -> web.StreamResponse:
    m = _m(request)
    if m is None:
        return render(
            request, "console/area.html", title="市场营销", service=None, missing="营销服务未配置。"
        )
    properties = sorted(deps_of(request).policy.properties)

    def read():
        segments = []
        for name in _segment_names():
            try:
                segments.append({"name": name, **m.segments.count(name)})
            except Exception as exc:  # a broken segment file: show why, keep the page
                segments.append({"name": name, "error": str(exc)})
        touch = {p: m.touchpoints.sequence(p) for p in properties}
        return segments, m.campaigns.list()[::-1], touch

    segments, campaigns, touch = await asyncio.to_thread(read)
    return _render_with_flash(
        request,
        "console/marketing.html",
        segments=segments,
        campaigns=campaigns,
        touchpoints=touch,
        reasons=REASONS,
        touch_names=TOUCHPOINTS,
        status_names=STATUS,
        local=_china,
    )


@require("marketing")
async def create_campaign(request: web.Request) -> web.StreamResponse:
    m = _m(request)
    if m is None:
        return _flash(web.HTTPSeeOther("/marketing"), "营销服务未配置。")
    from bot.marketing.campaigns import CampaignError

    form = await request.post()
    segment_name = str(form.get("segment") or "")
    template = str(form.get("template") or "")
    if segment_name not in _segment_names():
        return _flash(web.HTTPSeeOther("/marketing"), "请选择一个分群。")
    if len(template) > MAX_TEMPLATE:
        return _flash(web.HTTPSeeOther("/marketing"), f"模板太长（最多 {MAX_TEMPLATE} 字）。")
    from bot.marketing.segments_service import SEGMENTS_DIR

    segment = yaml.safe_load((SEGMENTS_DIR / f"{segment_name}.yml").read_text(encoding="utf-8"))
    spec = {
        "name": str(form.get("name") or "").strip(),
        "kind": "one_off",
        "surface": str(form.get("surface") or "single"),
        "segment": segment.get("segment", segment) if isinstance(segment, dict) else segment,
        "template": template,
        "schedule": str(form.get("schedule") or "").strip() or "now",
    }
    try:
        campaign_id = await asyncio.to_thread(m.campaigns.create, spec, actor=_actor(request))
    except (CampaignError, ValueError) as exc:
        return _flash(web.HTTPSeeOther("/marketing"), f"未保存：{exc}")
    return _flash(
        web.HTTPSeeOther(f"/marketing/campaigns/{campaign_id}"),
        f"已保存活动 #{campaign_id}，请检查预览。",
    )


@require("marketing")
async def campaign_page(request: web.Request) -> web.StreamResponse:
    m = _m(request)
    if m is None:
        return refuse(request, "营销服务未配置。", status=503)
    from bot.marketing.campaigns import CampaignNotFound

    try:
        campaign_id = int(request.match_info["campaign_id"])
        campaign = await asyncio.to_thread(m.campaigns.get, campaign_id)
        preview = await asyncio.to_thread(m.campaigns.preview, campaign_id)
    except (ValueError, CampaignNotFound):
        return refuse(request, "没有这个活动。", status=404)
    report = None
    if campaign["status"] not in ("scheduled", "cancelled"):
        try:
            report = await m.campaigns.report(campaign_id, refresh=False)
        except Exception as exc:
            report = {"error": str(exc)}
    await asyncio.to_thread(
        deps_of(request).crm.record_audit,
        _actor(request),
        "console.campaign_preview",
        "campaign",
        campaign_id,
        {"recipients": preview.get("recipients")},
    )
    return _render_with_flash(
        request,
        "console/campaign.html",
        campaign=campaign,
        preview=preview,
        report=report,
        reasons=REASONS,
        status_names=STATUS,
        local=_china,
    )


@require("marketing")
async def toggle_touchpoint(request: web.Request) -> web.StreamResponse:
    m = _m(request)
    form = await request.post()
    prop, kind = str(form.get("property") or ""), str(form.get("kind") or "")
    enabled = form.get("enabled") == "1"
    if m is None or prop not in deps_of(request).policy.properties:
        return _flash(web.HTTPSeeOther("/marketing"), "没有这个门店。")
    try:
        await asyncio.to_thread(
            m.touchpoints.set_enabled, prop, kind, enabled, actor=_actor(request)
        )
    except ValueError as exc:
        return _flash(web.HTTPSeeOther("/marketing"), f"未保存：{exc}")
    return _flash(
        web.HTTPSeeOther("/marketing"), f"{prop} 的 {kind} 已{'开启' if enabled else '关闭'}。"
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/marketing", marketing_page)
    app.router.add_post("/marketing/campaigns", create_campaign)
    app.router.add_get(r"/marketing/campaigns/{campaign_id}", campaign_page)
    app.router.add_post("/marketing/touchpoints", toggle_touchpoint)

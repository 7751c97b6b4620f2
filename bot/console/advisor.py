"""/advisor: the queue and the case, for advisors and supervisors of the case's property.

Reads go through the paging store and the CRM's audited profile read (bot.audit); actions go
through `PagingService.act` / `reassign`, the same code as the WeCom commands (notices to the
guest, the pause/resume of the bot, the audit log, WeCom's send path and quotas). Every page or
fragment that shows a guest writes an audit entry naming the viewer before the guest's data is
read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Optional
from urllib.parse import urlencode

from aiohttp import web

from bot.audit import Staff, read_profile, staff_read
from bot.console.web import deps_of, member_of, refuse, render, require
from bot.crm.errors import GuestNotFound, StoreUnavailable
from bot.paging import clocks as rules
from bot.paging.handoff import RasaUnavailable
from bot.paging.store import ClockDTO, ClockNotFound

log = logging.getLogger(__name__)

FLASH_COOKIE = "console_flash"
SCOPES = {"all": "全部", "mine": "我的", "unassigned": "未接单"}
STATE_NAMES = {
    rules.RUNNING: "待接单",
    rules.ACKNOWLEDGED: "处理中",
    rules.RESOLVED: "已结案",
    rules.CANCELLED: "已取消",
}
KIND_NAMES = {"ticket": "投诉/工单", "order": "订单", "handoff": "转人工"}
MAX_TEXT = 1000


def staff_of(request: web.Request) -> Staff:
    return Staff("console", member_of(request).userid)


def deadline_of(clock: ClockDTO) -> tuple[Optional[dt.datetime], Optional[dt.datetime], str]:
    """(window start, deadline, what) of the clock's current deadline."""
    if clock.state == rules.RUNNING:
        return clock.started_at, clock.ack_due_at, "接单"
    if clock.resolve_due_at is not None:
        return clock.acknowledged_at or clock.started_at, clock.resolve_due_at, "解决"
    return None, None, "解决"


def badge(clock: ClockDTO, now: dt.datetime) -> dict:
    """The SLA badge: remaining time and its colour (ok / amber: a third of the window or less
    left / red: overdue). The page's script keeps counting down from `deadline`."""
    start, due, what = deadline_of(clock)
    if due is None or not clock.is_open:
        return {"level": "none", "what": what, "deadline": "", "left_s": None, "window_s": None}
    left = (due - now).total_seconds()
    window = max(1.0, (due - start).total_seconds()) if start else 1.0
    level = "red" if left <= 0 else ("amber" if left <= window / 3 else "ok")
    return {
        "level": level,
        "what": what,
        "deadline": due.isoformat(),
        "left_s": int(left),
        "window_s": int(window),
    }


def _local(policy, moment: Optional[dt.datetime]) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(policy.tz).strftime("%m-%d %H:%M")


def _label(policy, clock: ClockDTO) -> str:
    try:
        return policy.sla_class(clock.sla_class, clock.property_id).label
    except KeyError:
        return clock.sla_class


def _name(policy, userid: Optional[str]) -> str:
    if not userid:
        return "—"
    person = policy.people().get(userid)
    return person.name if person else userid


def _flash(response: web.StreamResponse, text: str) -> web.StreamResponse:
    response.set_cookie(
        FLASH_COOKIE,
        text[:300].encode("utf-8").hex(),
        max_age=60,
        path="/",
        httponly=True,
        samesite="Lax",
    )
    return response


def _take_flash(request: web.Request) -> Optional[str]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        return bytes.fromhex(raw).decode("utf-8")
    except ValueError:
        return None


def _render_with_flash(request: web.Request, template: str, **context) -> web.Response:
    flash = _take_flash(request)
    response = render(request, template, flash=flash, **context)
    if flash is not None:
        response.del_cookie(FLASH_COOKIE, path="/")
    return response


# ---- the queue ---------------------------------------------------------------------------------


def _filters(request: web.Request) -> dict:
    q = request.query
    scope = q.get("scope", "all")
    return {
        "property": q.get("property", ""),
        "kind": q.get("kind", ""),
        "scope": scope if scope in SCOPES else "all",
    }


async def _queue_rows(request: web.Request) -> tuple[list[dict], dict, list[str], list[str]]:
    deps = deps_of(request)
    member = member_of(request)
    policy, now = deps.policy, deps.now()
    filters = _filters(request)
    clocks = await asyncio.to_thread(deps.paging.store.clocks, states=rules.OPEN_STATES)
    visible = [c for c in clocks if deps.staff.allows(member.userid, c.property_id)]
    properties = sorted({c.property_id or "default" for c in visible})
    kinds = sorted({c.sla_class for c in visible})
    if filters["property"]:
        visible = [c for c in visible if (c.property_id or "default") == filters["property"]]
    if filters["kind"]:
        visible = [c for c in visible if c.sla_class == filters["kind"]]
    if filters["scope"] == "mine":
        visible = [c for c in visible if c.holder == member.userid]
    elif filters["scope"] == "unassigned":
        visible = [c for c in visible if c.state == rules.RUNNING]
    far = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    visible.sort(key=lambda c: (deadline_of(c)[1] or far, c.id))

    def names() -> dict:
        found = {}
        for sender in {c.sender_id for c in visible}:
            guest = deps.crm.find_guest(sender)
            found[sender] = (
                guest.display_name if guest and guest.display_name else sender,
                guest.tier if guest else "—",
            )
        return found

    guests = {}
    if visible:  # the audit entry names every guest shown, before their data is read
        guests = await asyncio.to_thread(
            staff_read,
            deps.crm,
            staff_of(request),
            "console.queue",
            "guest",
            None,
            names,
            detail={
                "senders": sorted({c.sender_id for c in visible}),
                "cases": [c.id for c in visible],
            },
        )
    rows = []
    for c in visible:
        name, tier = guests.get(c.sender_id, (c.sender_id, "—"))
        rows.append(
            {
                "id": c.id,
                "label": _label(policy, c),
                "kind": KIND_NAMES.get(c.subject_type, ""),
                "guest": name,
                "tier": tier,
                "summary": c.summary or "",
                "property": c.property_id or "default",
                "state": STATE_NAMES.get(c.state, c.state),
                "holder": _name(policy, c.holder),
                "mine": c.holder == member.userid,
                "taken_over": bool(c.takeover_userid and c.handed_back_at is None),
                "badge": badge(c, now),
                "due_local": _local(policy, deadline_of(c)[1]),
                "created": _local(policy, c.created_at),
            }
        )
    return rows, filters, properties, kinds


@require("advisor")
async def queue_page(request: web.Request) -> web.StreamResponse:
    try:
        rows, filters, properties, kinds = await _queue_rows(request)
    except StoreUnavailable as exc:
        return refuse(request, f"数据库暂时不可用：{exc}", status=503)
    policy = deps_of(request).policy
    return _render_with_flash(
        request,
        "console/queue.html",
        rows=rows,
        filters=filters,
        properties=properties,
        kinds=[(k, policy.classes[k].label if k in policy.classes else k) for k in kinds],
        scopes=SCOPES,
        query=urlencode({k: v for k, v in filters.items() if v}),
    )


@require("advisor")
async def queue_fragment(request: web.Request) -> web.StreamResponse:
    try:
        rows, filters, _, _ = await _queue_rows(request)
    except StoreUnavailable:
        return web.Response(status=503, text="数据库暂时不可用")
    return render(
        request,
        "console/_queue_rows.html",
        rows=rows,
        filters=filters,
        query=urlencode({k: v for k, v in filters.items() if v}),
    )


# ---- a case ------------------------------------------------------------------------------------


async def _allowed_clock(request: web.Request) -> ClockDTO | web.Response:
    deps = deps_of(request)
    member = member_of(request)
    try:
        case_id = int(request.match_info["case_id"])
        clock = await asyncio.to_thread(deps.paging.store.clock, case_id)
    except (ValueError, ClockNotFound):
        return refuse(request, "没有这个单。", status=404)
    if not deps.staff.allows(member.userid, clock.property_id):
        log.warning(
            "console: %s refused case #%s of %s", member.userid, clock.id, clock.property_id
        )
        try:
            await asyncio.to_thread(
                deps.crm.record_audit,
                f"console:{member.userid}",
                "console.denied",
                clock.subject_type,
                clock.subject_id,
                {"case": clock.id, "property": clock.property_id},
            )
        except StoreUnavailable:
            pass
        return refuse(request, "这个单属于您不负责的门店，不能查看。")
    return clock


def _ratings(clocks: list[ClockDTO], feedback: list[dict]) -> dict:
    ratings = [c.rating for c in clocks if c.rating is not None]
    nps = [f for f in feedback if f.get("kind") == "nps"]
    avg = round(sum(ratings) / len(ratings), 1) if ratings else None
    return {"count": len(ratings), "avg": avg, "nps": nps[-3:]}


@require("advisor")
async def case_page(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    clock = await _allowed_clock(request)
    if isinstance(clock, web.Response):
        return clock
    policy, now = deps.policy, deps.now()
    try:
        profile = await asyncio.to_thread(
            read_profile, deps.crm, staff_of(request), clock.sender_id, reason=f"case #{clock.id}"
        )
    except GuestNotFound:
        profile = None
    except StoreUnavailable as exc:
        return refuse(request, f"数据库暂时不可用：{exc}", status=503)
    steps = await asyncio.to_thread(deps.paging.store.steps, clock.id)
    notes = await asyncio.to_thread(deps.paging.store.notes, clock.id)
    history = await asyncio.to_thread(deps.paging.store.clocks, sender_id=clock.sender_id)
    member = member_of(request)
    talking = bool(clock.takeover_userid and clock.handed_back_at is None)
    return _render_with_flash(
        request,
        "console/case.html",
        case=clock,
        label=_label(policy, clock),
        state=STATE_NAMES.get(clock.state, clock.state),
        badge=badge(clock, now),
        local=lambda m: _local(policy, m),
        name=lambda u: _name(policy, u),
        profile=profile,
        steps=steps,
        notes=notes,
        talking=talking,
        mine=clock.holder == member.userid,
        history=[
            {
                "id": c.id,
                "label": _label(policy, c),
                "state": STATE_NAMES.get(c.state, c.state),
                "created": _local(policy, c.created_at),
                "rating": c.rating,
            }
            for c in history
            if c.id != clock.id
        ],
        ratings=_ratings(history, (profile or {}).get("feedback", [])),
        canned=deps.canned_for(clock.property_id),
        advisors=[
            a for a in deps.staff.advisors_for(clock.property_id) if a.userid != clock.holder
        ],
        ack_outcome=rules.outcome(clock.ack_due_at, clock.acknowledged_at, now),
        resolve_outcome=rules.outcome(clock.resolve_due_at, clock.resolved_at, now),
    )


@require("advisor")
async def conversation_fragment(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    clock = await _allowed_clock(request)
    if isinstance(clock, web.Response):
        return clock

    try:
        await asyncio.to_thread(
            deps.crm.record_audit,
            f"console:{member_of(request).userid}",
            "console.conversation",
            "guest",
            clock.sender_id,
            {"case": clock.id},
        )
        turns, problem = await deps.rasa.conversation(clock.sender_id), None
    except RasaUnavailable as exc:
        turns, problem = [], f"暂时读不到对话记录（{exc}）"
    except StoreUnavailable as exc:
        turns, problem = [], f"数据库暂时不可用：{exc}"
    policy = deps.policy
    for turn in turns:
        stamp = turn.get("time")
        turn["local"] = (
            _local(policy, dt.datetime.fromtimestamp(stamp, dt.timezone.utc))
            if isinstance(stamp, (int, float))
            else ""
        )
    return render(request, "console/_conversation.html", turns=turns, problem=problem, case=clock)


def _back(clock_id: int) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/advisor/cases/{clock_id}")


@require("advisor")
async def act(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    clock = await _allowed_clock(request)
    if isinstance(clock, web.Response):
        return clock
    form = await request.post()
    verb = str(form.get("verb") or "")
    text = str(form.get("text") or "").strip()
    if len(text) > MAX_TEXT:
        return _flash(_back(clock.id), f"内容太长（最多 {MAX_TEXT} 字），未发送。")
    try:
        message = await deps.paging.act(member_of(request).userid, clock.id, verb, text)
    except ValueError as exc:
        message = str(exc) if verb in ("note", "resolve", "reply", "decline") else "不支持的操作。"
    except StoreUnavailable as exc:
        message = f"数据库暂时不可用，操作未完成：{exc}"
    return _flash(_back(clock.id), message)


@require("advisor")
async def reassign(request: web.Request) -> web.StreamResponse:
    deps = deps_of(request)
    clock = await _allowed_clock(request)
    if isinstance(clock, web.Response):
        return clock
    to = str((await request.post()).get("to") or "")
    if to not in {a.userid for a in deps.staff.advisors_for(clock.property_id)}:
        return _flash(_back(clock.id), "只能转派给该门店值班名单里的顾问。")
    message = await deps.paging.reassign(member_of(request).userid, clock.id, to)
    return _flash(_back(clock.id), message)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/advisor", queue_page)
    app.router.add_get("/advisor/queue", queue_fragment)
    app.router.add_get(r"/advisor/cases/{case_id}", case_page)
    app.router.add_get(r"/advisor/cases/{case_id}/conversation", conversation_fragment)
    app.router.add_post(r"/advisor/cases/{case_id}/act", act)
    app.router.add_post(r"/advisor/cases/{case_id}/reassign", reassign)

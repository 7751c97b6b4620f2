"""/reports for supervisors and admins: SLA met/missed per class and per advisor, time to
acknowledge and to resolve (bot.paging.report, the figures `concierge sla-report` prints),
CSAT (the 1-5 ratings after a case) and NPS (0-10 survey answers) per week. Each table is a CSV
download; the charts are inline SVG drawn here (no chart library, no JavaScript).

Supervisors see the cases of their own properties; admins see every property.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Iterable, Optional

from aiohttp import web

from bot.console.web import deps_of, member_of, refuse, render, require
from bot.console.staff import ADMIN
from bot.crm.errors import StoreUnavailable
from bot.paging.report import build_report
from bot.paging.store import ClockDTO

PERIODS = {"7d": 7, "30d": 30, "90d": 90}
TABLES = ("classes", "advisors", "csat", "nps", "fallbacks", "intents")
TOP_INTENTS = 15
# How many of the messages the bot did not understand the report lists.
TOP_FALLBACKS = 15


def _dur(seconds: Optional[float]) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}秒"
    if seconds < 3600:
        return f"{seconds // 60}分{seconds % 60:02d}秒"
    return f"{seconds // 3600}小时{(seconds % 3600) // 60:02d}分"


def week_of(moment: dt.datetime, tz) -> dt.date:
    local = moment.astimezone(tz).date()
    return local - dt.timedelta(days=local.weekday())


def csat_by_week(clocks: Iterable[ClockDTO], tz) -> list[dict]:
    """Per week (Monday, local): ratings, average, share of 4-5 ("satisfied")."""
    weeks: dict[dt.date, list[int]] = {}
    for c in clocks:
        if c.rating is not None and c.rated_at is not None:
            weeks.setdefault(week_of(c.rated_at, tz), []).append(c.rating)
    return [
        {
            "week": w.isoformat(),
            "count": len(v),
            "avg": round(sum(v) / len(v), 2),
            "satisfied_pct": round(100 * sum(1 for r in v if r >= 4) / len(v), 1),
        }
        for w, v in sorted(weeks.items())
    ]


def nps_by_week(scores: Iterable[tuple[dt.datetime, int]], tz) -> list[dict]:
    """Per week: answers, promoters (9-10) minus detractors (0-6) in percent."""
    weeks: dict[dt.date, list[int]] = {}
    for at, score in scores:
        weeks.setdefault(week_of(at, tz), []).append(score)
    rows = []
    for w, v in sorted(weeks.items()):
        promoters = sum(1 for s in v if s >= 9)
        detractors = sum(1 for s in v if s <= 6)
        rows.append(
            {
                "week": w.isoformat(),
                "count": len(v),
                "promoters": promoters,
                "detractors": detractors,
                "nps": round(100 * (promoters - detractors) / len(v)),
            }
        )
    return rows


@dataclass
class Bar:
    label: str
    value: float
    text: str


def svg_bars(
    title: str,
    bars: list[Bar],
    *,
    max_value: Optional[float] = None,
    colour: str = "#2f7d5b",
    unit: str = "",
) -> str:
    """A horizontal bar chart as an SVG string (escaped; values are numbers we computed)."""
    from markupsafe import escape

    row_h, label_w, width = 26, 150, 520
    height = 30 + row_h * max(1, len(bars))
    top = max_value if max_value is not None else max([b.value for b in bars] + [1])
    top = top or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    if not bars:
        parts.append('<text x="0" y="44" class="chart-empty">暂无数据</text>')
    for i, bar in enumerate(bars):
        y = 26 + i * row_h
        w = max(0.0, (width - label_w - 70) * max(0.0, bar.value) / top)
        parts.append(f'<text x="0" y="{y + 15}" class="chart-label">{escape(bar.label)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{colour}" rx="3"/>'
        )
        parts.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="chart-value">'
            f"{escape(bar.text)}{escape(unit)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _period(request: web.Request) -> str:
    period = request.query.get("period", "30d")
    return period if period in PERIODS else "30d"


async def _figures(request: web.Request) -> dict:
    deps = deps_of(request)
    member = member_of(request)
    policy, now = deps.policy, deps.now()
    period = _period(request)
    since = now - dt.timedelta(days=PERIODS[period])
    clocks = await asyncio.to_thread(deps.paging.store.clocks, since=since)
    if ADMIN not in member.roles:  # supervisors: their own properties only
        clocks = [c for c in clocks if deps.staff.allows(member.userid, c.property_id)]
    ids = {c.id for c in clocks}
    steps = [s for s in await asyncio.to_thread(deps.paging.store.steps) if s.clock_id in ids]
    report = build_report(policy, clocks, steps, now, since=since)
    scores = await asyncio.to_thread(deps.crm.feedback_scores, "nps", since)
    classes = [
        {
            "class": f.label,
            "cases": f.cases,
            "open": f.open,
            "ack_met": f.ack_met,
            "ack_missed": f.ack_missed,
            "ack_pending": f.ack_pending,
            "ack_met_pct": None if f.ack_met_pct is None else round(f.ack_met_pct, 1),
            "ack_median": _dur(f.ack.median_s),
            "ack_p90": _dur(f.ack.p90_s),
            "resolve_met": f.resolve_met,
            "resolve_missed": f.resolve_missed,
            "resolve_median": _dur(f.resolve.median_s),
            "resolve_p90": _dur(f.resolve.p90_s),
            "rating_avg": f.rating_avg,
        }
        for f in report.classes
    ]
    advisors = [
        {
            "advisor": a.name,
            "userid": a.userid,
            "handled": a.handled,
            "ack_breaches": a.ack_breaches,
            "resolve_breaches": a.resolve_breaches,
            "rating_avg": a.rating_avg,
        }
        for a in report.advisors
    ]
    csat = csat_by_week(clocks, policy.tz)
    nps = nps_by_week(scores, policy.tz)  # survey answers carry no property: group-wide
    fallbacks = await asyncio.to_thread(_fallbacks, deps.extras.get("training"))
    usage = await asyncio.to_thread(_usage, deps.extras.get("events"), since)
    # Automation: of the guests who wrote in the period, those with no case (complaint, order:
    # anything that brought a person in) and no handoff (asked for a person, the bot gave up, an
    # advisor took over) were served by the bot alone.
    with_person = {
        c.sender_id for c in await asyncio.to_thread(deps.paging.store.clocks, since=since)
    } | set(usage["handed_off"])
    talked = set(usage["senders"])
    automation = {
        "conversations": len(talked),
        "without_person": len(talked - with_person),
        "handed_off": len(talked & set(usage["handed_off"])),
        "fallbacks": usage["fallbacks"],
        "rate_pct": round(100 * len(talked - with_person) / len(talked), 1) if talked else None,
    }
    intents = [
        {"intent": name, "messages": n}
        for name, n in sorted(usage["intents"].items(), key=lambda kv: (-kv[1], kv[0]))
    ][:TOP_INTENTS]
    return {
        "period": period,
        "since": since,
        "classes": classes,
        "advisors": advisors,
        "csat": csat,
        "nps": nps,
        "fallbacks": fallbacks,
        "report": report,
        "automation": automation,
        "intents": intents,
        "all_properties": ADMIN in member.roles,
    }


def _usage(events, since: dt.datetime) -> dict:
    """Intent counts, the senders who wrote and those handed to a person, from the event
    stream's table (bot.events.store, filled by `concierge events consume`; Rasa's tracker
    store is never scanned); none when it is not configured or not reachable (the rest of the
    report still shows)."""
    empty = {"intents": {}, "senders": [], "handed_off": [], "fallbacks": 0}
    if events is None:
        return empty
    try:
        return events.usage_since(since)
    except Exception as exc:  # the database is down: say nothing rather than fail
        import logging

        logging.getLogger(__name__).warning("reports: conversation events unavailable: %s", exc)
        return empty


def _fallbacks(training) -> list[dict]:
    """The messages the bot understood least, most frequent first (the training loop's NLU
    inbox: fallbacks, low confidence, rephrasings, handoffs; texts already masked there)."""
    if training is None:
        return []
    items = training.inbox.items(status=None, limit=200)
    return [
        {
            "text": i["text"],
            "count": i["count"],
            "predicted": i["predicted"] or "",
            "reasons": "、".join(sorted(i["reasons"])),
            "status": i["status"],
        }
        for i in items
    ][:TOP_FALLBACKS]


def _charts(f: dict) -> dict:
    met = [
        Bar(
            c["class"],
            c["ack_met_pct"] or 0,
            "—" if c["ack_met_pct"] is None else f'{c["ack_met_pct"]}',
        )
        for c in f["classes"]
    ]
    speed = [
        Bar(c.label, (c.ack.median_s or 0) / 60, _dur(c.ack.median_s)) for c in f["report"].classes
    ]
    breaches = [
        Bar(
            a["advisor"],
            a["ack_breaches"] + a["resolve_breaches"],
            str(a["ack_breaches"] + a["resolve_breaches"]),
        )
        for a in f["advisors"]
    ]
    csat = [Bar(w["week"], w["avg"], f'{w["avg"]}') for w in f["csat"]]
    nps = [Bar(w["week"], w["nps"] + 100, f'{w["nps"]}') for w in f["nps"]]
    intents = [Bar(i["intent"], i["messages"], str(i["messages"])) for i in f["intents"][:8]]
    return {
        "met": svg_bars("按时接单率（%）", met, max_value=100, unit="%"),
        "speed": svg_bars("接单用时中位数", speed, colour="#3b6ea5"),
        "breaches": svg_bars("各顾问超时次数", breaches, colour="#b3412e"),
        "csat": svg_bars("每周客人评分（1-5）", csat, max_value=5, colour="#c58b16"),
        "nps": svg_bars("每周 NPS（-100～100）", nps, max_value=200, colour="#6b4fa0"),
        "intents": svg_bars("客人最常问的（意图）", intents, colour="#3b6ea5"),
    }


@require("reports")
async def reports_page(request: web.Request) -> web.StreamResponse:
    try:
        figures = await _figures(request)
    except StoreUnavailable as exc:
        return refuse(request, f"数据库暂时不可用：{exc}", status=503)
    return render(
        request, "console/reports.html", f=figures, charts=_charts(figures), periods=PERIODS
    )


@require("reports")
async def reports_csv(request: web.Request) -> web.StreamResponse:
    table = request.match_info["table"]
    if table not in TABLES:
        return refuse(request, "没有这张表。", status=404)
    try:
        figures = await _figures(request)
    except StoreUnavailable as exc:
        return refuse(request, f"数据库暂时不可用：{exc}", status=503)
    rows = figures[table]
    out = io.StringIO()
    out.write("\ufeff")  # so Excel opens the Chinese text as UTF-8
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    name = f"{table}-{figures['period']}.csv"
    return web.Response(
        body=out.getvalue().encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/reports", reports_page)
    app.router.add_get(r"/reports/{table}.csv", reports_csv)

"""SLA figures: per class, time to acknowledge and to resolve, met / missed, late steps, ratings,
and breaches by advisor. `concierge sla-report` (and `make sla-report`) print them; `--json` for
the console.

Attribution: a missed acknowledgement counts against the advisor who was paged last (or, if
nobody was on duty, "(无人值班)"); a missed resolution against the advisor holding the case.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional

from bot.paging import clocks as rules
from bot.paging.policy import Policy, format_duration
from bot.paging.store import ClockDTO, StepDTO

NOBODY = "(无人值班)"


@dataclass
class Durations:
    count: int = 0
    median_s: Optional[float] = None
    p90_s: Optional[float] = None
    max_s: Optional[float] = None

    @classmethod
    def of(cls, seconds: list[float]) -> "Durations":
        if not seconds:
            return cls()
        ordered = sorted(seconds)
        p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
        return cls(len(ordered), statistics.median(ordered), p90, ordered[-1])


@dataclass
class ClassFigures:
    sla_class: str
    label: str
    cases: int = 0
    open: int = 0
    ack: Durations = field(default_factory=Durations)
    resolve: Durations = field(default_factory=Durations)
    ack_met: int = 0
    ack_missed: int = 0
    ack_pending: int = 0
    resolve_met: int = 0
    resolve_missed: int = 0
    resolve_pending: int = 0
    steps_sent: int = 0
    steps_late: int = 0
    steps_failed: int = 0
    ratings: int = 0
    rating_avg: Optional[float] = None

    @property
    def ack_met_pct(self) -> Optional[float]:
        done = self.ack_met + self.ack_missed
        return 100.0 * self.ack_met / done if done else None


@dataclass
class AdvisorFigures:
    userid: str
    name: str
    handled: int = 0
    ack_breaches: int = 0
    resolve_breaches: int = 0
    ratings: int = 0
    rating_avg: Optional[float] = None


@dataclass
class SlaReport:
    since: Optional[dt.datetime]
    until: dt.datetime
    classes: list[ClassFigures]
    advisors: list[AdvisorFigures]

    def to_json(self) -> dict:
        def conv(value):
            if isinstance(value, dt.datetime):
                return value.isoformat()
            if isinstance(value, list):
                return [conv(v) for v in value]
            if isinstance(value, dict):
                return {k: conv(v) for k, v in value.items()}
            return value

        data = asdict(self)
        for figures, raw in zip(self.classes, data["classes"]):
            raw["ack_met_pct"] = figures.ack_met_pct
        return conv(data)


def build_report(
    policy: Policy,
    clocks: Iterable[ClockDTO],
    steps: Iterable[StepDTO],
    now: dt.datetime,
    since: Optional[dt.datetime] = None,
) -> SlaReport:
    clocks = list(clocks)
    by_clock: dict[int, list[StepDTO]] = {}
    for step in steps:
        by_clock.setdefault(step.clock_id, []).append(step)
    people = policy.people()

    def label(name: str) -> str:
        return policy.classes[name].label if name in policy.classes else name

    figures: dict[str, ClassFigures] = {}
    ack_times: dict[str, list] = {}
    resolve_times: dict[str, list] = {}
    ratings: dict[str, list] = {}
    advisors: dict[str, AdvisorFigures] = {}
    advisor_ratings: dict[str, list] = {}

    def advisor(userid: Optional[str]) -> AdvisorFigures:
        key = userid or NOBODY
        if key not in advisors:
            person = people.get(key)
            advisors[key] = AdvisorFigures(key, person.name if person else key)
        return advisors[key]

    for c in clocks:
        f = figures.setdefault(c.sla_class, ClassFigures(c.sla_class, label(c.sla_class)))
        f.cases += 1
        f.open += int(c.state in rules.OPEN_STATES)
        if c.acknowledged_at:
            ack_times.setdefault(c.sla_class, []).append(
                (c.acknowledged_at - c.started_at).total_seconds()
            )
        if c.resolved_at:
            resolve_times.setdefault(c.sla_class, []).append(
                (c.resolved_at - c.started_at).total_seconds()
            )
        ack = rules.outcome(
            c.ack_due_at,
            c.acknowledged_at or (c.resolved_at if c.state == rules.RESOLVED else None),
            now,
        )
        if c.state == rules.CANCELLED and ack == "pending":
            ack = "none"
        if ack == "met":
            f.ack_met += 1
        elif ack == "missed":
            f.ack_missed += 1
            advisor(c.paged_userid).ack_breaches += 1
        elif ack == "pending":
            f.ack_pending += 1
        res = rules.outcome(c.resolve_due_at, c.resolved_at, now)
        if c.state == rules.CANCELLED and res == "pending":
            res = "none"
        if res == "met":
            f.resolve_met += 1
        elif res == "missed":
            f.resolve_missed += 1
            advisor(c.assignee_userid or c.paged_userid).resolve_breaches += 1
        elif res == "pending":
            f.resolve_pending += 1
        holder = c.assignee_userid or c.takeover_userid
        if holder:
            advisor(holder).handled += 1
        if c.rating is not None:
            ratings.setdefault(c.sla_class, []).append(c.rating)
            if c.resolved_by:
                advisor_ratings.setdefault(c.resolved_by, []).append(c.rating)
        for step in by_clock.get(c.id, []):
            if step.status == rules.SENT and not step.step.startswith("guest_"):
                f.steps_sent += 1
                f.steps_late += int(bool(step.late))
            elif step.status == rules.FAILED:
                f.steps_failed += 1

    for name, f in figures.items():
        f.ack = Durations.of(ack_times.get(name, []))
        f.resolve = Durations.of(resolve_times.get(name, []))
        values = ratings.get(name, [])
        f.ratings = len(values)
        f.rating_avg = round(statistics.mean(values), 2) if values else None
    for userid, values in advisor_ratings.items():
        a = advisor(userid)
        a.ratings = len(values)
        a.rating_avg = round(statistics.mean(values), 2) if values else None

    order = {name: i for i, name in enumerate(policy.classes)}
    return SlaReport(
        since=since,
        until=now,
        classes=sorted(figures.values(), key=lambda f: (order.get(f.sla_class, 99), f.sla_class)),
        advisors=sorted(
            advisors.values(),
            key=lambda a: (-(a.ack_breaches + a.resolve_breaches), -a.handled, a.userid),
        ),
    )


def _dur(seconds: Optional[float]) -> str:
    if seconds is None:
        return "—"
    return format_duration(dt.timedelta(seconds=seconds))


def _table(headers: list[str], rows: list[list[str]]) -> str:
    def width(text: str) -> int:  # CJK characters take two columns in a terminal
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)

    widths = [
        max(width(h), *(width(r[i]) for r in rows)) if rows else width(h)
        for i, h in enumerate(headers)
    ]

    def line(cells):
        return "  ".join(c + " " * (w - width(c)) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def format_report(report: SlaReport) -> str:
    since = report.since.isoformat(timespec="minutes") if report.since else "the beginning"
    out = [f"SLA report, {since} → {report.until.isoformat(timespec='minutes')}", ""]
    if not report.classes:
        return "\n".join(out + ["No cases yet."])
    rows = []
    for f in report.classes:
        pct = f"{f.ack_met_pct:.0f}%" if f.ack_met_pct is not None else "—"
        rows.append(
            [
                f"{f.label} ({f.sla_class})",
                str(f.cases),
                str(f.open),
                f"{_dur(f.ack.median_s)} / {_dur(f.ack.p90_s)}",
                f"{f.ack_met}/{f.ack_missed}/{f.ack_pending}",
                pct,
                f"{_dur(f.resolve.median_s)} / {_dur(f.resolve.p90_s)}",
                f"{f.resolve_met}/{f.resolve_missed}/{f.resolve_pending}",
                f"{f.steps_late}/{f.steps_sent}"
                + (f" ({f.steps_failed} failed)" if f.steps_failed else ""),
                f"{f.rating_avg:.1f} ({f.ratings})" if f.rating_avg is not None else "—",
            ]
        )
    out.append(
        _table(
            [
                "class",
                "cases",
                "open",
                "ack median/p90",
                "ack met/missed/pending",
                "ack met %",
                "resolve median/p90",
                "resolve met/missed/pending",
                "late/sent pages",
                "rating",
            ],
            rows,
        )
    )
    out += ["", "Breaches by advisor"]
    arows = [
        [
            f"{a.name} ({a.userid})",
            str(a.handled),
            str(a.ack_breaches),
            str(a.resolve_breaches),
            f"{a.rating_avg:.1f} ({a.ratings})" if a.rating_avg is not None else "—",
        ]
        for a in report.advisors
    ]
    out.append(
        _table(["advisor", "handled", "ack breaches", "resolve breaches", "rating"], arows)
        if arows
        else "No advisor has handled or missed a case yet."
    )
    return "\n".join(out)

"""The SLA policy: a YAML file (path from `SLA_POLICY_FILE`) loaded and validated at start-up.

What it holds (see `data/sla_policy.yml` for a commented example):

    version: 1
    timezone: Asia/Shanghai           # service hours, rosters and holidays are local times
    grace: 1s                         # a step fired more than this after it fell due is "late"
    link: "http://.../cases/{case_id}?sig={sig}"  # the textcard's link (fields: case_id, sig)
    properties:
      default:                        # required: used for any property without its own section
        service_hours: [{days: all, from: "09:00", to: "22:00"}]   # over midnight: from 22:00 to 06:00
        holidays: ["2026-10-01", {date: "2026-12-31", hours: [{from: "09:00", to: "18:00"}]}]
        roster:
          - {userid: li, name: 李顾问, on_duty: [{days: [mon, tue], from: "00:00", to: "24:00"}],
             off: ["2026-10-02"]}
        supervisors: [{userid: wang, name: 王主管}]
        duty_manager: {userid: zhao, name: 赵经理}
        emergency_group: {name: 应急群, webhook: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."}
        classes: {complaint_routine: {ack_within: 5m}}   # optional per-property overrides
    classes:
      complaint_routine:
        label: 普通投诉
        ack_within: 10m               # first response (接单) deadline
        resolve_within: 2h            # resolution deadline (optional)
        service_hours_only: false     # true: the clock starts at the next service-hours opening
        steps:
          - {name: page, after: 0s, notify: [on_duty]}
          - {name: repage, after: 5m, notify: [paged]}
          - {name: escalate, after: ack, notify: [supervisor, guest]}
          - {name: escalate_resolve, after: resolve, until: resolve, notify: [supervisor, guest]}

A step is due `after` the clock started (a duration, or `ack` / `resolve` for those deadlines) and
fires once unless the clock has reached `until` by then (`ack` by default; `resolve`; or `none`).

Every problem in the file is reported at once, each with its path, e.g.
`classes.complaint_routine.steps[2].notify: unknown target 'supervsor'`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.core.errors import DataError

# The sla_class names the conversation flows put on tickets, orders and handoffs.
KNOWN_CLASSES = (
    "complaint_routine",
    "complaint_major",
    "addon_order",
    "human_request",
    "data_deletion",
)

# Who a step can notify.
#   on_duty       the advisor on duty (least loaded) -- becomes the clock's paged advisor
#   paged         the advisor paged before (the assignee once someone took it); on_duty if none
#   next_on_duty  the next advisor on the roster after the paged one (re-routes the clock)
#   supervisor    every supervisor of the property
#   duty_manager  the property's duty manager
#   emergency_group  a post to the property's emergency group robot
#   guest         tells the guest the deadline slipped and what happens now
#   guest_update  tells the guest the case is still being worked on and by whom (with `every`:
#                 the major-incident updates "until closed")
TARGETS = (
    "on_duty",
    "paged",
    "next_on_duty",
    "supervisor",
    "duty_manager",
    "emergency_group",
    "guest",
    "guest_update",
)
# A step with `every` repeats that often, `times` times in all (default 12), named name, name_2 …
DEFAULT_REPEAT_TIMES = 12
MAX_REPEAT_TIMES = 99
UNTIL = ("ack", "resolve", "none")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_PROPERTY = "default"
# The case page the Rasa process serves (bot.paging.case_pages via connectors/paging.py),
# signed (bot.paging.links) so a case number alone does not open it.
DEFAULT_LINK = "http://localhost:5005/webhooks/paging/cases/{case_id}?sig={sig}"


Duration = dt.timedelta


class PolicyError(DataError):
    """The policy file is missing or wrong; `problems` lists every error found, with its path."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid SLA policy {source}: {len(self.problems)} problem(s)\n{lines}")


# ---- value types --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Local time window starting on `days`; `end` <= `start` means it runs past midnight.
    Times are minutes after midnight; `end` may be 1440 (24:00)."""

    days: frozenset  # of weekday numbers, Monday = 0
    start: int
    end: int

    @property
    def overnight(self) -> bool:
        return self.end <= self.start and not (self.start == 0 and self.end == 1440)

    def describe(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


@dataclass(frozen=True)
class Holiday:
    date: dt.date
    hours: Tuple[Window, ...] = ()  # empty: closed all day; else these windows replace the usual


@dataclass(frozen=True)
class Person:
    userid: str
    name: str


@dataclass(frozen=True)
class Advisor(Person):
    on_duty: Tuple[Window, ...] = ()
    off: frozenset = frozenset()  # dates (local) this advisor has off


@dataclass(frozen=True)
class Group:
    name: str
    webhook: str
    mention: Tuple[str, ...] = ()  # userids to @-mention in posts ("@all" allowed)


@dataclass(frozen=True)
class Step:
    name: str
    after: Union[Duration, str]  # a duration after the start, or "ack" / "resolve"
    notify: Tuple[str, ...]
    until: str = "ack"
    every: Optional[Duration] = None  # repeat this often (e.g. guest updates until closed)
    times: int = 1

    def offset(self, cls: "SlaClass") -> Duration:
        if self.after == "ack":
            return cls.ack_within
        if self.after == "resolve":
            assert cls.resolve_within is not None
            return cls.resolve_within
        return self.after


@dataclass(frozen=True)
class SlaClass:
    name: str
    label: str
    ack_within: Duration
    resolve_within: Optional[Duration]
    steps: Tuple[Step, ...]
    service_hours_only: bool = False
    ask_rating: bool = True


@dataclass(frozen=True)
class PropertyPolicy:
    id: str
    service_hours: Tuple[Window, ...]
    holidays: Mapping[dt.date, Holiday]
    roster: Tuple[Advisor, ...]
    supervisors: Tuple[Person, ...]
    duty_manager: Optional[Person]
    emergency_group: Optional[Group]
    classes: Mapping[str, SlaClass]


@dataclass(frozen=True)
class Policy:
    source: str
    timezone: str
    grace: Duration
    link: str
    properties: Mapping[str, PropertyPolicy]
    classes: Mapping[str, SlaClass] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def property(self, property_id: Optional[str]) -> PropertyPolicy:
        return (
            self.properties.get(property_id or DEFAULT_PROPERTY)
            or self.properties[DEFAULT_PROPERTY]
        )

    def sla_class(self, name: str, property_id: Optional[str] = None) -> SlaClass:
        """The class as it applies at `property_id` (its override, else the shared one)."""
        prop = self.property(property_id)
        if name in prop.classes:
            return prop.classes[name]
        if name in self.classes:
            return self.classes[name]
        raise KeyError(
            f"SLA class {name!r} is not in the policy {self.source} "
            f"(known: {', '.join(sorted(self.classes))})"
        )

    def has_class(self, name: Optional[str]) -> bool:
        return bool(name) and name in self.classes

    def link_for(self, case_id: int, viewer: str, links=None) -> str:
        """The case page URL for `viewer` (an advisor's userid, or `group:<name>`), signed by
        `links` (a bot.paging.links.CaseLinks; default: from the settings)."""
        if links is None:
            from bot.paging.links import CaseLinks

            links = CaseLinks.from_settings()
        return self.link.format(case_id=case_id, sig=links.sign(case_id, viewer))

    def people(self) -> dict[str, Person]:
        """Every staff member the policy names, by WeCom userid (roster, supervisors, managers)."""
        found: dict[str, Person] = {}
        for prop in self.properties.values():
            for person in (
                *prop.roster,
                *prop.supervisors,
                *([prop.duty_manager] if prop.duty_manager else []),
            ):
                found.setdefault(person.userid, person)
        return found


# ---- parsing helpers ----------------------------------------------------------------------------

_DURATION_RE = re.compile(
    r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_duration(value: Any) -> Duration:
    """`90` (seconds), `"30s"`, `"10m"`, `"2h"`, `"1h30m"`, `"1d"`, `"0.5s"` → timedelta."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 10m, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative ({value})")
        return dt.timedelta(seconds=value)
    if isinstance(value, str) and value.strip():
        match = _DURATION_RE.match(value.strip().lower())
        if match and any(match.groups()):
            d, h, m, s = match.groups()
            return dt.timedelta(
                days=int(d or 0), hours=int(h or 0), minutes=int(m or 0), seconds=float(s or 0)
            )
    raise ValueError(f"expected a duration like 30s, 10m, 2h or 1h30m, got {value!r}")


def format_duration(value: Duration) -> str:
    """timedelta → the Chinese an advisor or guest reads: 10分钟, 2小时, 1小时30分钟, 5秒."""
    seconds = int(round(value.total_seconds()))
    if seconds < 60:
        return f"{seconds}秒"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    if days:
        parts.append(f"{days}天")
    if hours:
        parts.append(f"{hours}小时")
    if minutes:
        parts.append(f"{minutes}分钟")
    return "".join(parts)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_time(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 09:00 as the sexagesimal integer 540.
        if 0 <= value <= 1440:
            return value
    if isinstance(value, str):
        match = _TIME_RE.match(value.strip())
        if match:
            hours, minutes = int(match.group(1)), int(match.group(2))
            if (hours < 24 and minutes < 60) or (hours == 24 and minutes == 0):
                return hours * 60 + minutes
    raise ValueError(f'expected a time like "09:00" (00:00-24:00), got {value!r}')


def _parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a date like 2026-10-01, got {value!r}")


class _Checker:
    """Collects problems with their paths instead of stopping at the first one."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}" if path else message)

    def mapping(
        self,
        value: Any,
        path: str,
        *,
        required: Sequence[str] = (),
        allowed: Sequence[str] | None = None,
    ) -> dict | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {type(value).__name__}")
            return None
        for key in required:
            if key not in value:
                self.error(path, f"missing required key '{key}'")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    self.error(
                        f"{path}.{key}" if path else str(key),
                        f"unknown key (allowed: {', '.join(allowed)})",
                    )
        return value

    def list_of(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {type(value).__name__}")
            return []
        return value

    def convert(self, fn, value: Any, path: str, default=None):
        try:
            return fn(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return default

    def text(self, value: Any, path: str, *, required: bool = True) -> str | None:
        if value is None and not required:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # e.g. a numeric userid
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"expected a non-empty text, got {value!r}")
            return None
        return value.strip()


def _days(check: _Checker, value: Any, path: str) -> frozenset:
    if value in (None, "all", "daily", "*"):
        return frozenset(range(7))
    if value == "weekdays":
        return frozenset(range(5))
    if value == "weekends":
        return frozenset({5, 6})
    items = value if isinstance(value, list) else [value]
    days = set()
    for i, item in enumerate(items):
        key = str(item).strip().lower()[:3]
        if key in WEEKDAYS:
            days.add(WEEKDAYS.index(key))
        else:
            check.error(
                f"{path}[{i}]" if isinstance(value, list) else path,
                f"unknown day {item!r} (use mon..sun, weekdays, weekends or all)",
            )
    return frozenset(days)


def _windows(check: _Checker, value: Any, path: str) -> Tuple[Window, ...]:
    if isinstance(value, dict):
        value = [value]
    windows = []
    for i, raw in enumerate(check.list_of(value, path)):
        wpath = f"{path}[{i}]"
        item = check.mapping(raw, wpath, required=("from", "to"), allowed=("days", "from", "to"))
        if item is None or "from" not in item or "to" not in item:
            continue
        start = check.convert(_parse_time, item["from"], f"{wpath}.from")
        end = check.convert(_parse_time, item["to"], f"{wpath}.to")
        if start is None or end is None:
            continue
        if start == 1440:
            check.error(f"{wpath}.from", "a window cannot start at 24:00")
            continue
        if start == end:
            check.error(
                wpath,
                f"empty window {_hhmm(start)}-{_hhmm(end)} "
                '(use from: "00:00", to: "24:00" for the whole day)',
            )
            continue
        windows.append(Window(_days(check, item.get("days"), f"{wpath}.days"), start, end))
    return tuple(windows)


def _person(check: _Checker, raw: Any, path: str, *, extra: Sequence[str] = ()) -> dict | None:
    item = check.mapping(raw, path, required=("userid",), allowed=("userid", "name", *extra))
    if item is None or "userid" not in item:
        return None
    userid = check.text(item.get("userid"), f"{path}.userid")
    name = check.text(item.get("name"), f"{path}.name", required=False) or userid
    if userid is None:
        return None
    return {"userid": userid, "name": name, **{k: item[k] for k in extra if k in item}}


def _holidays(check: _Checker, value: Any, path: str) -> dict:
    found: dict[dt.date, Holiday] = {}
    for i, raw in enumerate(check.list_of(value, path)):
        hpath = f"{path}[{i}]"
        if isinstance(raw, dict):
            item = check.mapping(raw, hpath, required=("date",), allowed=("date", "hours", "name"))
            if item is None or "date" not in item:
                continue
            day = check.convert(_parse_date, item["date"], f"{hpath}.date")
            hours = _windows(check, item.get("hours"), f"{hpath}.hours")
        else:
            day = check.convert(_parse_date, raw, hpath)
            hours = ()
        if day is not None:
            if day in found:
                check.error(hpath, f"holiday {day} listed twice")
            found[day] = Holiday(day, hours)
    return found


def _step(check: _Checker, raw: Any, path: str, cls_has_resolve: bool) -> Step | None:
    item = check.mapping(
        raw,
        path,
        required=("name", "after", "notify"),
        allowed=("name", "after", "notify", "until", "every", "times"),
    )
    if item is None or not all(k in item for k in ("name", "after", "notify")):
        return None
    name = check.text(item["name"], f"{path}.name")
    if name and not re.match(r"^[a-z][a-z0-9_]{0,31}$", name):
        check.error(f"{path}.name", f"{name!r}: use lower-case letters, digits and _ (max 32)")
    after_raw = item["after"]
    if after_raw in ("ack", "resolve"):
        after = after_raw
        if after == "resolve" and not cls_has_resolve:
            check.error(f"{path}.after", "'resolve' needs the class to have resolve_within")
    else:
        after = check.convert(parse_duration, after_raw, f"{path}.after")
    notify_raw = item["notify"]
    notify = notify_raw if isinstance(notify_raw, list) else [notify_raw]
    targets = []
    for j, target in enumerate(notify):
        if target not in TARGETS:
            check.error(
                f"{path}.notify[{j}]" if isinstance(notify_raw, list) else f"{path}.notify",
                f"unknown target {target!r} (expected one of: {', '.join(TARGETS)})",
            )
        else:
            targets.append(target)
    if not notify:
        check.error(f"{path}.notify", "a step must notify someone")
    until = item.get("until", "ack")
    if until not in UNTIL:
        check.error(f"{path}.until", f"expected one of {', '.join(UNTIL)}, got {until!r}")
    every, times = None, 1
    if "every" in item:
        every = check.convert(parse_duration, item["every"], f"{path}.every")
        if every is not None and every <= dt.timedelta(0):
            check.error(f"{path}.every", "must be longer than 0s")
        times = item.get("times", DEFAULT_REPEAT_TIMES)
        if (
            not isinstance(times, int)
            or isinstance(times, bool)
            or not 1 <= times <= MAX_REPEAT_TIMES
        ):
            check.error(f"{path}.times", f"expected a whole number 1-{MAX_REPEAT_TIMES}")
            times = 1
        if name and len(f"{name}_{times}") > 32:
            check.error(f"{path}.name", "too long for a repeated step (name_N must fit 32)")
        if until == "none":
            check.error(
                f"{path}.until", "a repeated step needs until: ack or resolve (it stops then)"
            )
    elif "times" in item:
        check.error(f"{path}.times", "'times' needs 'every'")
    if name is None or after is None:
        return None
    return Step(
        name=name, after=after, notify=tuple(targets), until=until, every=every, times=times
    )


_CLASS_KEYS = ("label", "ack_within", "resolve_within", "steps", "service_hours_only", "ask_rating")


def _sla_class(
    check: _Checker, name: str, raw: Any, path: str, base: SlaClass | None = None
) -> SlaClass | None:
    item = check.mapping(
        raw, path, required=() if base else ("ack_within", "steps"), allowed=_CLASS_KEYS
    )
    if item is None:
        return None
    label = check.text(item.get("label", base.label if base else name), f"{path}.label") or name
    ack = (
        check.convert(parse_duration, item["ack_within"], f"{path}.ack_within")
        if "ack_within" in item
        else (base.ack_within if base else None)
    )
    if "resolve_within" in item:
        resolve = (
            None
            if item["resolve_within"] in (None, "none")
            else check.convert(parse_duration, item["resolve_within"], f"{path}.resolve_within")
        )
    else:
        resolve = base.resolve_within if base else None
    if ack is not None and ack.total_seconds() <= 0:
        check.error(f"{path}.ack_within", "must be longer than 0s")
    if ack is not None and resolve is not None and resolve < ack:
        check.error(
            f"{path}.resolve_within",
            f"shorter than ack_within ({format_duration(resolve)} < {format_duration(ack)})",
        )
    if "steps" in item:
        steps = []
        raw_steps = check.list_of(item["steps"], f"{path}.steps")
        if not raw_steps:
            check.error(f"{path}.steps", "a class needs at least one step")
        for i, raw_step in enumerate(raw_steps):
            step = _step(check, raw_step, f"{path}.steps[{i}]", resolve is not None)
            if step:
                steps.append(step)
        names = [s.name for s in steps]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            check.error(f"{path}.steps", f"step name {dup!r} used twice")
        steps_t = tuple(steps)
    else:
        steps_t = base.steps if base else ()
        if base and resolve is None:
            for i, step in enumerate(steps_t):
                if step.after == "resolve":
                    check.error(
                        f"{path}.resolve_within",
                        f"inherited step {step.name!r} needs resolve_within",
                    )
    flags = {}
    for flag, default in (("service_hours_only", False), ("ask_rating", True)):
        value = item.get(flag, getattr(base, flag) if base else default)
        if not isinstance(value, bool):
            check.error(f"{path}.{flag}", f"expected true or false, got {value!r}")
            value = default
        flags[flag] = value
    if ack is None:
        return None
    return SlaClass(
        name=name, label=label, ack_within=ack, resolve_within=resolve, steps=steps_t, **flags
    )


_PROPERTY_KEYS = (
    "service_hours",
    "holidays",
    "roster",
    "supervisors",
    "duty_manager",
    "emergency_group",
    "classes",
)


def _property(
    check: _Checker,
    prop_id: str,
    raw: Any,
    path: str,
    shared: Mapping[str, SlaClass],
    default: PropertyPolicy | None,
) -> PropertyPolicy | None:
    item = check.mapping(raw if raw is not None else {}, path, allowed=_PROPERTY_KEYS)
    if item is None:
        return None

    def inherit(key, parse):
        if key in item:
            return parse(item[key], f"{path}.{key}")
        return getattr(default, key) if default else parse(None, f"{path}.{key}")

    service_hours = inherit(
        "service_hours",
        lambda v, p: _windows(check, v if v is not None else [{"from": "00:00", "to": "24:00"}], p),
    )
    holidays = inherit("holidays", lambda v, p: _holidays(check, v, p))

    def roster(value, rpath):
        advisors = []
        for i, raw_adv in enumerate(check.list_of(value, rpath)):
            apath = f"{rpath}[{i}]"
            person = _person(check, raw_adv, apath, extra=("on_duty", "off"))
            if person is None:
                continue
            on_duty = _windows(
                check, person.get("on_duty", [{"from": "00:00", "to": "24:00"}]), f"{apath}.on_duty"
            )
            off = frozenset(
                d
                for j, raw_d in enumerate(check.list_of(person.get("off"), f"{apath}.off"))
                if (d := check.convert(_parse_date, raw_d, f"{apath}.off[{j}]"))
            )
            advisors.append(Advisor(person["userid"], person["name"], on_duty, off))
        ids = [a.userid for a in advisors]
        for dup in sorted({u for u in ids if ids.count(u) > 1}):
            check.error(rpath, f"advisor {dup!r} listed twice")
        return tuple(advisors)

    def supervisors(value, spath):
        people = []
        for i, raw_p in enumerate(check.list_of(value, spath)):
            person = _person(check, raw_p, f"{spath}[{i}]")
            if person:
                people.append(Person(person["userid"], person["name"]))
        return tuple(people)

    def duty_manager(value, mpath):
        if value is None:
            return None
        person = _person(check, value, mpath)
        return Person(person["userid"], person["name"]) if person else None

    def group(value, gpath):
        if value is None:
            return None
        g = check.mapping(
            value, gpath, required=("webhook",), allowed=("name", "webhook", "mention")
        )
        if g is None or "webhook" not in g:
            return None
        webhook = check.text(g["webhook"], f"{gpath}.webhook")
        if webhook and not re.match(r"^https?://", webhook):
            check.error(f"{gpath}.webhook", f"expected an http(s) URL, got {webhook!r}")
        mention = tuple(str(m) for m in check.list_of(g.get("mention"), f"{gpath}.mention"))
        return Group(name=str(g.get("name") or "应急群"), webhook=webhook or "", mention=mention)

    classes = {}
    raw_classes = item.get("classes")
    if raw_classes is not None:
        mapping = check.mapping(raw_classes, f"{path}.classes") or {}
        for name, raw_cls in mapping.items():
            base = shared.get(name)
            if base is None:
                check.error(
                    f"{path}.classes.{name}",
                    "overrides a class that is not under the top-level classes",
                )
                continue
            cls = _sla_class(check, name, raw_cls, f"{path}.classes.{name}", base)
            if cls:
                classes[name] = cls

    return PropertyPolicy(
        id=prop_id,
        service_hours=service_hours,
        holidays=holidays,
        roster=inherit("roster", roster),
        supervisors=inherit("supervisors", supervisors),
        duty_manager=inherit("duty_manager", duty_manager),
        emergency_group=inherit("emergency_group", group),
        classes=classes,
    )


def _check_targets(
    check: _Checker, policy_classes: Mapping[str, SlaClass], prop: PropertyPolicy, path: str
) -> None:
    """Every target a class's steps notify must exist at this property."""
    classes = {**policy_classes, **prop.classes}
    needs = {t for cls in classes.values() for s in cls.steps for t in s.notify}
    if needs & {"on_duty", "paged", "next_on_duty"} and not prop.roster:
        check.error(f"{path}.roster", "steps page the on-duty advisor but the roster is empty")
    if "supervisor" in needs and not prop.supervisors:
        check.error(f"{path}.supervisors", "steps escalate to 'supervisor' but none is listed")
    if "duty_manager" in needs and prop.duty_manager is None:
        check.error(f"{path}.duty_manager", "steps notify 'duty_manager' but none is set")
    if "emergency_group" in needs and prop.emergency_group is None:
        check.error(f"{path}.emergency_group", "steps post to 'emergency_group' but none is set")
    if not prop.service_hours and any(c.service_hours_only for c in classes.values()):
        check.error(f"{path}.service_hours", "a class runs in service hours only but none are set")


_TOP_KEYS = ("version", "timezone", "grace", "link", "properties", "classes")


def parse_policy(
    data: Any, source: str = "<policy>", *, require_classes: Sequence[str] = KNOWN_CLASSES
) -> Policy:
    """Validate parsed YAML and build the `Policy`; raises `PolicyError` listing every problem."""
    check = _Checker()
    top = check.mapping(data, "", required=("version", "properties", "classes"), allowed=_TOP_KEYS)
    if top is None:
        raise PolicyError(source, check.problems or ["the file is empty"])
    if "version" in top and top["version"] != 1:
        check.error("version", f"unsupported version {top['version']!r} (this code reads 1)")
    timezone = str(top.get("timezone", "Asia/Shanghai"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        check.error("timezone", f"unknown time zone {timezone!r} (e.g. Asia/Shanghai)")
        timezone = "UTC"
    grace = check.convert(parse_duration, top.get("grace", "1s"), "grace", dt.timedelta(seconds=1))
    link = str(top.get("link", DEFAULT_LINK))
    try:
        link.format(case_id=1, sig="x")
    except (KeyError, IndexError, ValueError) as exc:
        check.error("link", f"bad format string ({exc}); the fields are {{case_id}} and {{sig}}")

    classes: dict[str, SlaClass] = {}
    raw_classes = check.mapping(top.get("classes", {}), "classes") or {}
    for name, raw_cls in raw_classes.items():
        if not re.match(r"^[a-z][a-z0-9_]{0,31}$", str(name)):
            check.error(f"classes.{name}", "class names use lower-case letters, digits and _")
        cls = _sla_class(check, str(name), raw_cls, f"classes.{name}")
        if cls:
            classes[str(name)] = cls
    for name in require_classes:
        if name not in raw_classes:
            check.error("classes", f"missing class '{name}' (the conversation flows use it)")

    properties: dict[str, PropertyPolicy] = {}
    raw_props = check.mapping(top.get("properties", {}), "properties") or {}
    if raw_props and DEFAULT_PROPERTY not in raw_props:
        check.error("properties", f"missing '{DEFAULT_PROPERTY}' (used for any other property)")
    default = None
    if DEFAULT_PROPERTY in raw_props:
        default = _property(
            check,
            DEFAULT_PROPERTY,
            raw_props[DEFAULT_PROPERTY],
            f"properties.{DEFAULT_PROPERTY}",
            classes,
            None,
        )
        if default:
            properties[DEFAULT_PROPERTY] = default
    for prop_id, raw_prop in raw_props.items():
        if prop_id == DEFAULT_PROPERTY:
            continue
        prop = _property(check, str(prop_id), raw_prop, f"properties.{prop_id}", classes, default)
        if prop:
            properties[str(prop_id)] = prop
    for prop_id, prop in properties.items():
        _check_targets(check, classes, prop, f"properties.{prop_id}")

    if check.problems:
        raise PolicyError(source, check.problems)
    return Policy(
        source=source,
        timezone=timezone,
        grace=grace,
        link=link,
        properties=properties,
        classes=classes,
    )


def load_policy(
    path: Union[str, Path, None] = None, *, require_classes: Sequence[str] = KNOWN_CLASSES
) -> Policy:
    """Read and validate the policy file (default: settings' SLA_POLICY_FILE)."""
    if path is None:
        from bot.settings import get_settings

        path = get_settings().sla_policy_file
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            source, [f"file not found (set SLA_POLICY_FILE or create {path})"]
        ) from None
    except OSError as exc:
        raise PolicyError(source, [f"cannot read the file: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PolicyError(
            source, [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    return parse_policy(data, source, require_classes=require_classes)

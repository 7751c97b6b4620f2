"""Who is on duty, and when service hours are open: pure functions of the policy and a moment.

Rules (the tests pin them down):
- A window belongs to the day it *starts*: `{days: [fri], from: "22:00", to: "06:00"}` covers
  Friday 22:00 to Saturday 06:00. `to` is exclusive: at 06:00 the window is closed.
- A property holiday replaces the service hours of windows starting on that date: closed all day,
  or the holiday's own `hours`. It does not change advisors' shifts (a hotel is staffed on a
  holiday); an advisor's own `off` dates remove their shifts starting on those dates.
- On duty: the advisors whose shift covers the moment, least loaded first (open cases they hold),
  then in roster order. Nobody on duty is a normal answer (an empty list), never an error.
- Moments are aware datetimes (any zone); the policy's time zone decides the local day.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable, Iterator, Mapping, Optional, Sequence, Tuple

from bot.paging.policy import Advisor, Holiday, Policy, PropertyPolicy, Window

Interval = Tuple[dt.datetime, dt.datetime]

# How far ahead next_open looks before answering "never" (a policy with no hours at all).
LOOKAHEAD_DAYS = 400


def _require_aware(moment: dt.datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware datetime")


def _window_intervals(
    window: Window, day: dt.date, tz, *, ignore_days: bool = False
) -> Iterator[Interval]:
    if not ignore_days and day.weekday() not in window.days:
        return
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    start = midnight + dt.timedelta(minutes=window.start)
    if window.overnight:
        end = midnight + dt.timedelta(days=1, minutes=window.end)
    else:
        end = midnight + dt.timedelta(minutes=window.end)
    yield start, end


def intervals(
    windows: Sequence[Window],
    tz,
    first_day: dt.date,
    last_day: dt.date,
    *,
    holidays: Mapping[dt.date, Holiday] | None = None,
    off: Iterable[dt.date] = (),
) -> list[Interval]:
    """Concrete open intervals of windows starting on first_day..last_day, sorted by start."""
    holidays = holidays or {}
    off = set(off)
    found: list[Interval] = []
    day = first_day
    while day <= last_day:
        if day not in off:
            holiday = holidays.get(day)
            if holiday is None:
                for window in windows:
                    found.extend(_window_intervals(window, day, tz))
            else:
                for window in holiday.hours:
                    found.extend(_window_intervals(window, day, tz, ignore_days=True))
        day += dt.timedelta(days=1)
    return sorted(found)


def _covers(spans: Iterable[Interval], moment: dt.datetime) -> bool:
    return any(start <= moment < end for start, end in spans)


def _local_day(policy: Policy, moment: dt.datetime) -> dt.date:
    _require_aware(moment)
    return moment.astimezone(policy.tz).date()


# ---- service hours ------------------------------------------------------------------------------


def in_service_hours(policy: Policy, prop: PropertyPolicy, moment: dt.datetime) -> bool:
    day = _local_day(policy, moment)
    spans = intervals(
        prop.service_hours, policy.tz, day - dt.timedelta(days=1), day, holidays=prop.holidays
    )
    return _covers(spans, moment)


def next_service_opening(
    policy: Policy, prop: PropertyPolicy, moment: dt.datetime
) -> Optional[dt.datetime]:
    """`moment` itself when service hours are open then, else when they next open (None: never)."""
    day = _local_day(policy, moment)
    # Look ahead in chunks so an ordinary week costs little.
    start_day = day - dt.timedelta(days=1)
    for chunk in range(0, LOOKAHEAD_DAYS, 14):
        first = start_day + dt.timedelta(days=chunk)
        spans = intervals(
            prop.service_hours,
            policy.tz,
            first,
            first + dt.timedelta(days=14),
            holidays=prop.holidays,
        )
        for start, end in spans:
            if end > moment:
                return max(start, moment).astimezone(moment.tzinfo)
    return None


def service_hours_text(prop: PropertyPolicy) -> str:
    """“每天 09:00-22:00” style summary for guest notices."""
    if not prop.service_hours:
        return "暂无人工服务时间"
    if all(
        w.days == frozenset(range(7)) and w.start == 0 and w.end == 1440 for w in prop.service_hours
    ):
        return "全天24小时"
    names = "一二三四五六日"
    parts = []
    for w in prop.service_hours:
        if w.days == frozenset(range(7)):
            days = "每天"
        elif w.days == frozenset(range(5)):
            days = "工作日"
        else:
            days = "周" + "、".join(names[d] for d in sorted(w.days))
        parts.append(f"{days} {w.describe()}")
    return "；".join(parts)


# ---- the roster ---------------------------------------------------------------------------------


def is_on_duty(policy: Policy, advisor: Advisor, moment: dt.datetime) -> bool:
    day = _local_day(policy, moment)
    spans = intervals(advisor.on_duty, policy.tz, day - dt.timedelta(days=1), day, off=advisor.off)
    return _covers(spans, moment)


def on_duty(
    policy: Policy,
    prop: PropertyPolicy,
    moment: dt.datetime,
    *,
    load: Mapping[str, int] | None = None,
    exclude: Iterable[str] = (),
) -> list[Advisor]:
    """Advisors on duty at `moment`, least loaded first, then roster order."""
    load = load or {}
    excluded = set(exclude)
    found = [
        (load.get(a.userid, 0), i, a)
        for i, a in enumerate(prop.roster)
        if a.userid not in excluded and is_on_duty(policy, a, moment)
    ]
    return [a for _, _, a in sorted(found, key=lambda t: (t[0], t[1]))]


def pick_on_duty(
    policy: Policy,
    prop: PropertyPolicy,
    moment: dt.datetime,
    *,
    load: Mapping[str, int] | None = None,
    exclude: Iterable[str] = (),
) -> Optional[Advisor]:
    advisors = on_duty(policy, prop, moment, load=load, exclude=exclude)
    return advisors[0] if advisors else None


def next_on_duty(
    policy: Policy, prop: PropertyPolicy, moment: dt.datetime, after_userid: Optional[str]
) -> Optional[Advisor]:
    """The next advisor on the roster after `after_userid` (wrapping round) who is on duty now,
    never `after_userid` themself; None when nobody else is on duty."""
    roster = list(prop.roster)
    if not roster:
        return None
    ids = [a.userid for a in roster]
    start = ids.index(after_userid) + 1 if after_userid in ids else 0
    for offset in range(len(roster)):
        advisor = roster[(start + offset) % len(roster)]
        if advisor.userid != after_userid and is_on_duty(policy, advisor, moment):
            return advisor
    return None


def find_person(policy: Policy, userid: str):
    """Any staff member the policy names (roster, supervisor, duty manager), or None."""
    return policy.people().get(userid)

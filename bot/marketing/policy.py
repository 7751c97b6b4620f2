"""The marketing policy (data/marketing/policy.yml, MARKETING_POLICY_FILE): caps, quiet hours,
lifecycle windows, value/frequency/health bands, attribution window and the touchpoint offers.

Validated on load: a wrong key or value is a `PolicyError` naming the key, never a surprise at
send time.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from bot.core.errors import DataError
from bot.crm.store import CHINA_TZ
from bot.settings import PROJECT_ROOT
from bot.core.data import read_yaml

DEFAULT_POLICY_FILE = PROJECT_ROOT / "data" / "marketing" / "policy.yml"
CAP_PERIODS = ("month", "week", "day")


class PolicyError(DataError):
    """The marketing policy file is unusable; the message names the key."""


def _time(value: Any, where: str) -> dt.time:
    try:
        hour, minute = (int(x) for x in str(value).split(":"))
        return dt.time(hour % 24, minute)
    except (ValueError, TypeError):
        raise PolicyError(f'{where}: expected "HH:MM", got {value!r}') from None


@dataclass(frozen=True)
class Cap:
    period: str = "month"
    limit: Optional[int] = None  # None: as many as the month has days

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The China-time period `now` falls in, as UTC [start, end)."""
        local = now.astimezone(CHINA_TZ)
        day = local.date()
        if self.period == "day":
            start = day
            end = day + dt.timedelta(days=1)
        elif self.period == "week":
            start = day - dt.timedelta(days=day.weekday())
            end = start + dt.timedelta(days=7)
        else:
            start = day.replace(day=1)
            end = (start + dt.timedelta(days=32)).replace(day=1)

        def utc(d: dt.date) -> dt.datetime:
            return dt.datetime.combine(d, dt.time(0), tzinfo=CHINA_TZ).astimezone(dt.timezone.utc)

        return utc(start), utc(end)

    def limit_at(self, now: dt.datetime) -> int:
        if self.limit is not None:
            return self.limit
        local = now.astimezone(CHINA_TZ)
        return calendar.monthrange(local.year, local.month)[1]


@dataclass(frozen=True)
class MarketingPolicy:
    cap: Cap = field(default_factory=Cap)
    quiet_from: Optional[dt.time] = dt.time(22, 0)
    quiet_to: Optional[dt.time] = dt.time(8, 0)
    dormant_after_months: Mapping[str, int] = field(
        default_factory=lambda: {"hotel": 6, "trip": 12}
    )
    property_types: Mapping[str, str] = field(default_factory=dict)
    value: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: {
            "high": {"stays": 4, "spend": 20000},
            "potential": {"stays": 2, "spend": 5000},
        }
    )
    frequency: Mapping[str, int] = field(default_factory=lambda: {"high": 6, "mid": 2})
    health: Mapping[str, Any] = field(
        default_factory=lambda: {
            "per_month_since_stay": 5,
            "per_open_complaint": 25,
            "no_interaction_90d": 15,
            "bands": {"good": 70, "watch": 40},
        }
    )
    attribution_days: int = 7
    coupons: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    review_url: Optional[str] = None
    source: str = "(defaults)"

    def in_quiet_hours(self, now: dt.datetime) -> bool:
        if self.quiet_from is None or self.quiet_to is None:
            return False
        t = now.astimezone(CHINA_TZ).time()
        if self.quiet_from <= self.quiet_to:
            return self.quiet_from <= t < self.quiet_to
        return t >= self.quiet_from or t < self.quiet_to

    def quiet_ends(self, now: dt.datetime) -> dt.datetime:
        """When the quiet hours `now` is in end (now itself outside them)."""
        if not self.in_quiet_hours(now):
            return now
        local = now.astimezone(CHINA_TZ)
        end = dt.datetime.combine(local.date(), self.quiet_to, tzinfo=CHINA_TZ)
        if end <= local:
            end += dt.timedelta(days=1)
        return end.astimezone(dt.timezone.utc)

    def property_type(self, property_id: Optional[str]) -> str:
        return self.property_types.get(property_id or "", "hotel")

    def dormant_days(self, property_id: Optional[str]) -> int:
        return int(round(self.dormant_after_months[self.property_type(property_id)] * 30.44))


def parse_policy(data: Any, source: str = "(inline)") -> MarketingPolicy:
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping at the top")
    known = {
        "version",
        "cap",
        "quiet_hours",
        "dormant_after_months",
        "property_types",
        "value",
        "frequency",
        "health",
        "attribution_days",
        "coupons",
        "review_url",
    }
    unknown = set(data) - known
    if unknown:
        raise PolicyError(
            f"{source}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    kw: dict[str, Any] = {"source": source}
    cap = data.get("cap") or {}
    period = cap.get("period", "month")
    if period not in CAP_PERIODS:
        raise PolicyError(f"{source}: cap.period must be one of {', '.join(CAP_PERIODS)}")
    limit = cap.get("limit", "days_in_month")
    if limit == "days_in_month":
        if period != "month":
            raise PolicyError(f"{source}: cap.limit days_in_month only fits period month")
        limit = None
    elif not isinstance(limit, int) or limit < 0:
        raise PolicyError(f"{source}: cap.limit must be a whole number >= 0 or days_in_month")
    kw["cap"] = Cap(period, limit)
    if "quiet_hours" in data:
        quiet = data["quiet_hours"]
        if quiet is None:
            kw["quiet_from"] = kw["quiet_to"] = None
        else:
            kw["quiet_from"] = _time(quiet.get("from"), f"{source}: quiet_hours.from")
            kw["quiet_to"] = _time(quiet.get("to"), f"{source}: quiet_hours.to")
    for key in ("dormant_after_months", "value", "frequency", "health", "coupons"):
        if key in data:
            if not isinstance(data[key], dict):
                raise PolicyError(f"{source}: {key} must be a mapping")
            kw[key] = data[key]
    types = data.get("property_types") or {}
    bad = {k: v for k, v in types.items() if v not in ("hotel", "trip")}
    if bad:
        raise PolicyError(f"{source}: property_types values must be hotel or trip: {bad}")
    kw["property_types"] = types
    if set(kw.get("dormant_after_months", {"hotel": 1, "trip": 1})) != {"hotel", "trip"}:
        raise PolicyError(f"{source}: dormant_after_months needs exactly hotel and trip")
    if "attribution_days" in data:
        kw["attribution_days"] = int(data["attribution_days"])
    kw["review_url"] = data.get("review_url")
    return MarketingPolicy(**kw)


def load_policy(path: Path | str | None = None) -> MarketingPolicy:
    if path is None:
        from bot.settings import get_settings

        path = get_settings().marketing_policy_file
    return parse_policy(read_yaml(path, PolicyError), str(path))

"""What to wear and pack, from the stay's weather, the trip purpose and the kind of property.

Why rules as data (data/knowledge/packing_rules.yml): the advice is editorial (a hotel group may
want "泳衣" for its hot-spring hotel too), so it is edited in YAML and this module only evaluates
conditions. The weather side is reduced to a few numbers (`WeatherSummary`): from the forecast
when there is one, from the month's climate norms when the stay is beyond the forecast horizon.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from bot.knowledge.kb import Climate, _Fields, _read_yaml
from bot.knowledge.weather import DailyForecast

METRICS = ("temp_max", "temp_min", "temp_swing", "rain_days", "uv_max", "wind_scale_max")
_NUMERIC = re.compile(r"^(?P<metric>[a-z_]+)_(?P<op>gte|lt)$")
_SET_CONDITIONS = ("purpose_in", "property_type_in", "property_tags_any")


@dataclass(frozen=True)
class PackingRule:
    id: str
    when: Mapping[str, Any]
    group: str
    items: tuple[str, ...]

    def matches(
        self,
        metrics: Mapping[str, float | None],
        purpose: str | None,
        property_type: str | None,
        property_tags: Iterable[str],
    ) -> bool:
        for cond, value in self.when.items():
            if cond == "purpose_in":
                ok = purpose in value
            elif cond == "property_type_in":
                ok = property_type in value
            elif cond == "property_tags_any":
                ok = bool(set(value) & set(property_tags))
            else:
                m = _NUMERIC.match(cond)
                actual = metrics.get(m["metric"])
                if actual is None:  # unknown (e.g. no UV in the data): the rule does not fire
                    return False
                ok = actual >= value if m["op"] == "gte" else actual < value
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class PackingRules:
    rain_threshold_mm: float
    climate_rain_likely_days: int
    max_items_per_group: int
    purpose_aliases: Mapping[str, tuple[str, ...]]
    groups: tuple[tuple[str, str], ...]  # (key, label), in answer order
    rules: tuple[PackingRule, ...]

    @classmethod
    def load(cls, path: str | Path) -> "PackingRules":
        return _load_rules(Path(path).resolve())

    def canonical_purpose(self, text: str | None) -> str | None:
        """ "honeymoon", "蜜月旅行" -> "蜜月"; None when the purpose is not one we advise on."""
        if not text:
            return None
        needle = text.strip().lower()
        best: tuple[int, str] | None = None  # the longest alias inside the text wins
        for canonical, aliases in self.purpose_aliases.items():
            for alias in (canonical, *aliases):
                a = alias.lower()
                if a in needle and (best is None or len(a) > best[0]):
                    best = (len(a), canonical)
        return best[1] if best else None


@functools.lru_cache(maxsize=8)
def _load_rules(path: Path) -> PackingRules:
    top = _Fields(path, _read_yaml(path), "")
    groups = tuple((g.text("key"), g.text("label")) for g in top.items("groups"))
    group_keys = {k for k, _ in groups}
    aliases_section = top.sub("purpose_aliases")
    purpose_aliases = {str(k): aliases_section.texts(str(k)) for k in aliases_section.data}
    rules = []
    for r in top.items("rules"):
        when = r.sub("when")
        for cond, value in when.data.items():
            m = _NUMERIC.match(str(cond))
            if m and m["metric"] in METRICS:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise when.error(f"must be a number, got {value!r}", str(cond))
            elif cond in _SET_CONDITIONS:
                when.texts(str(cond), required=True)
            else:
                raise when.error(
                    f"is not a known condition (metrics: {', '.join(METRICS)} with "
                    f"_gte/_lt; or {', '.join(_SET_CONDITIONS)})",
                    str(cond),
                )
        group = r.text("group")
        if group not in group_keys:
            raise r.error(f"names group {group!r}, not one of {sorted(group_keys)}", "group")
        rules.append(
            PackingRule(
                id=r.text("id"),
                when={k: tuple(v) if isinstance(v, list) else v for k, v in when.data.items()},
                group=group,
                items=r.texts("items", required=True),
            )
        )
    return PackingRules(
        rain_threshold_mm=float(top.number("rain_threshold_mm")),
        climate_rain_likely_days=int(top.number("climate_rain_likely_days")),
        max_items_per_group=int(top.number("max_items_per_group")),
        purpose_aliases=purpose_aliases,
        groups=groups,
        rules=tuple(rules),
    )


# ---- the weather, reduced to numbers ----------------------------------------------------------
def is_rainy(f: DailyForecast, threshold_mm: float) -> bool:
    return f.precip_mm >= threshold_mm or any(
        w in f"{f.text_day}{f.text_night}" for w in ("雨", "雪")
    )


@dataclass(frozen=True)
class WeatherSummary:
    temp_max: float | None
    temp_min: float | None
    temp_swing: float | None
    rain_days: int
    uv_max: int | None
    wind_scale_max: int | None
    rainy_dates: tuple[date, ...] = ()
    from_forecast: bool = True  # False: climate norms (往年同期)
    climate_months: tuple[int, ...] = field(default=())  # months the norms came from

    @classmethod
    def from_forecasts(
        cls, forecasts: Sequence[DailyForecast], rain_threshold_mm: float
    ) -> "WeatherSummary":
        rainy = tuple(f.date for f in forecasts if is_rainy(f, rain_threshold_mm))
        uvs = [f.uv_index for f in forecasts if f.uv_index is not None]
        winds = [f.wind_scale_max for f in forecasts if f.wind_scale_max is not None]
        return cls(
            temp_max=max(f.temp_max for f in forecasts),
            temp_min=min(f.temp_min for f in forecasts),
            temp_swing=max(f.temp_max - f.temp_min for f in forecasts),
            rain_days=len(rainy),
            uv_max=max(uvs) if uvs else None,
            wind_scale_max=max(winds) if winds else None,
            rainy_dates=rainy,
        )

    @classmethod
    def from_climate(
        cls, climate: Climate, months: Iterable[int], rain_likely_days: int
    ) -> "WeatherSummary":
        norms = [climate.month(m) for m in sorted(set(months))]
        return cls(
            temp_max=max(n.high for n in norms),
            temp_min=min(n.low for n in norms),
            temp_swing=max(n.high - n.low for n in norms),
            rain_days=1 if any(n.rainy_days >= rain_likely_days for n in norms) else 0,
            uv_max=max(n.uv for n in norms),
            wind_scale_max=max(n.wind_scale for n in norms),
            from_forecast=False,
            climate_months=tuple(n.month for n in norms),
        )

    def merged(self, other: "WeatherSummary") -> "WeatherSummary":
        """Forecast for the days it covers plus norms for the rest: the wider of both."""

        def pick(f, a, b):
            vals = [v for v in (a, b) if v is not None]
            return f(vals) if vals else None

        return WeatherSummary(
            temp_max=pick(max, self.temp_max, other.temp_max),
            temp_min=pick(min, self.temp_min, other.temp_min),
            temp_swing=pick(max, self.temp_swing, other.temp_swing),
            rain_days=self.rain_days + other.rain_days,
            uv_max=pick(max, self.uv_max, other.uv_max),
            wind_scale_max=pick(max, self.wind_scale_max, other.wind_scale_max),
            rainy_dates=self.rainy_dates + other.rainy_dates,
            from_forecast=self.from_forecast and other.from_forecast,
            climate_months=self.climate_months + other.climate_months,
        )

    def metrics(self) -> dict[str, float | None]:
        return {m: getattr(self, m) for m in METRICS}


@dataclass(frozen=True)
class PackingAdvice:
    lines: tuple[tuple[str, tuple[str, ...]], ...]  # (group label, items), non-empty groups only
    rule_ids: tuple[str, ...]  # which rules fired (for tests and logs)
    weather: WeatherSummary | None
    purpose: str | None


def advise(
    rules: PackingRules,
    weather: WeatherSummary | None,
    *,
    purpose: str | None,
    property_type: str | None,
    property_tags: Iterable[str] = (),
) -> PackingAdvice:
    """Apply the rules in order; each group keeps its first `max_items_per_group` distinct items."""
    purpose = rules.canonical_purpose(purpose)
    metrics = weather.metrics() if weather else {}
    tags = tuple(property_tags)
    by_group: dict[str, list[str]] = {key: [] for key, _ in rules.groups}
    fired = []
    for rule in rules.rules:
        if not rule.matches(metrics, purpose, property_type, tags):
            continue
        fired.append(rule.id)
        bucket = by_group[rule.group]
        for item in rule.items:
            if item not in bucket and len(bucket) < rules.max_items_per_group:
                bucket.append(item)
    lines = tuple((label, tuple(by_group[key])) for key, label in rules.groups if by_group[key])
    return PackingAdvice(lines=lines, rule_ids=tuple(fired), weather=weather, purpose=purpose)

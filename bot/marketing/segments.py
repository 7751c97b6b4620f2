"""Segments: who a campaign is for, as data (a YAML mapping or a JSON column), validated on load.

    segment:
      tier_at_least: 金卡          # or tier: [金卡, 铂金]
      tags_any: [潜水, "interest:摄影"]
      tags_all: [...]
      scenario: [honeymoon, family]   # business leisure meeting family honeymoon
      lifecycle: [active, dormant]    # new active dormant (dormant window per property type)
      value: [high, potential]        # high potential low
      frequency: [high, mid]          # high mid low
      last_stay_before: -90d          # a date (2026-06-01) or days relative to today
      last_stay_after: 2025-01-01
      upcoming_within_days: 30
      property: [sanya-haitang-resort]
      city: [三亚]
      channel: [direct, ctrip]        # the newest booking's channel (bookings facts)
      birthday_month: [this, next, 12]
      health: [watch, at_risk]        # good watch at_risk
      consent: granted                # granted | not_granted | any (the default)
      demo: false

An unknown field or value raises `SegmentError` naming it. `evaluate()` returns the rules a
guest fails (empty: a member), which is also how previews explain who is left out. Consent here
only *selects*; the send path checks marketing consent itself whatever the segment says.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from bot.core.errors import DataError
from bot.crm.models import TIERS
from bot.marketing.facts import GuestFacts
from bot.marketing.policy import MarketingPolicy
from bot.core.data import read_yaml

SCENARIOS = {
    "business": {"商务"},
    "leisure": {"度假", "纪念日"},
    "meeting": {"会议"},
    "family": {"亲子"},
    "honeymoon": {"蜜月"},
}
LIFECYCLES = ("new", "active", "dormant")
BANDS = ("high", "potential", "low")
FREQUENCIES = ("high", "mid", "low")
HEALTH_BANDS = ("good", "watch", "at_risk")
CONSENTS = ("granted", "not_granted", "any")
_RELATIVE = re.compile(r"^([+-]?\d+)d$")


class SegmentError(DataError):
    """A segment definition that cannot be used; the message names the field and the value."""


def _list(spec: dict, key: str) -> list:
    value = spec[key]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _choices(spec: dict, key: str, allowed: Iterable[str]) -> frozenset:
    allowed = tuple(allowed)
    values = _list(spec, key)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise SegmentError(
            f"segment.{key}: unknown value(s) {', '.join(map(str, bad)) or '(none)'}"
            f"; allowed: {', '.join(allowed)}"
        )
    return frozenset(values)


def _when(value: Any, key: str) -> Callable[[dt.date], dt.date]:
    if isinstance(value, dt.date):
        return lambda today: value
    text = str(value).strip()
    match = _RELATIVE.match(text)
    if match:
        days = int(match.group(1))
        return lambda today: today + dt.timedelta(days=days)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise SegmentError(
            f"segment.{key}: expected a date (2026-06-01) or days (-90d), " f"got {value!r}"
        ) from None
    return lambda today: day


@dataclass(frozen=True)
class Segment:
    spec: dict
    rules: tuple = field(repr=False, default=())

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or "segment")

    @property
    def needs(self) -> frozenset:
        """Which facts beyond the guest row the rules read (see facts.load_facts)."""
        return frozenset().union(*(NEEDS.get(key, ()) for key in self.spec))

    @property
    def tiers(self) -> Optional[frozenset]:
        """The tiers a member can have (None: any): lets the facts load skip the others."""
        allowed = set(TIERS)
        if "tier" in self.spec:
            allowed &= set(_list(self.spec, "tier"))
        if "tier_at_least" in self.spec:
            allowed &= set(TIERS[TIERS.index(self.spec["tier_at_least"]) :])
        return None if allowed == set(TIERS) else frozenset(allowed)

    def tier_rule(self) -> Optional[str]:
        return next((k for k in ("tier", "tier_at_least") if k in self.spec), None)

    def evaluate(self, facts: GuestFacts, today: dt.date, policy: MarketingPolicy) -> list[str]:
        """The rules `facts` fails (empty list: the guest is in the segment)."""
        return [name for name, test in self.rules if not test(facts, today, policy)]

    def members(
        self, facts: Iterable[GuestFacts], today: dt.date, policy: MarketingPolicy
    ) -> list[GuestFacts]:
        return [f for f in facts if not self.evaluate(f, today, policy)]


# ---- derived bands (also shown in segment listings) ---------------------------------------------


def lifecycle(f: GuestFacts, today: dt.date, policy: MarketingPolicy) -> str:
    last = f.last_stay
    if last is None:
        return "new"
    if (today - last.check_out).days > policy.dormant_days(last.property_id):
        return "dormant"
    return "new" if len(f.stays) == 1 else "active"


def _year(f: GuestFacts, today: dt.date):
    """Stays and spend (CNY) in the 12 months up to today (spend: the bookings facts' own)."""
    stays = len(f.stays_since(today - dt.timedelta(days=365)))
    spend = float(f.booking_facts.spend_12m) if f.as_of is not None else 0.0
    return stays, spend


def value_band(f: GuestFacts, today: dt.date, policy: MarketingPolicy) -> str:
    stays, spend = _year(f, today)
    for band in ("high", "potential"):
        t = policy.value[band]
        if stays >= t.get("stays", float("inf")) or (
            spend and spend >= t.get("spend", float("inf"))
        ):
            return band
    return "low"


def frequency_band(f: GuestFacts, today: dt.date, policy: MarketingPolicy) -> str:
    stays, _ = _year(f, today)
    if stays >= policy.frequency["high"]:
        return "high"
    return "mid" if stays >= policy.frequency["mid"] else "low"


def health_score(f: GuestFacts, today: dt.date, policy: MarketingPolicy) -> int:
    h = policy.health
    score = 100
    last = f.last_stay
    if last is not None:
        score -= int(h["per_month_since_stay"]) * max(0, (today - last.check_out).days // 30)
    score -= int(h["per_open_complaint"]) * f.open_complaints
    recent = f.last_interaction
    if recent is None or (today - recent.date()).days > 90:
        if not f.upcoming:
            score -= int(h["no_interaction_90d"])
    return max(0, min(100, score))


def health_band(f: GuestFacts, today: dt.date, policy: MarketingPolicy) -> str:
    score, bands = health_score(f, today, policy), policy.health["bands"]
    if score >= bands["good"]:
        return "good"
    return "watch" if score >= bands["watch"] else "at_risk"


def _month(word: Any, today: dt.date) -> int:
    if word == "this":
        return today.month
    if word == "next":
        return today.month % 12 + 1
    if isinstance(word, int) and 1 <= word <= 12:
        return word
    raise SegmentError(f"segment.birthday_month: {word!r} is not 1-12, this or next")


# ---- parsing ------------------------------------------------------------------------------------


def parse_segment(spec: Any) -> Segment:
    """Validate a segment mapping and compile its rules."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise SegmentError("segment: expected a mapping of rules")
    rules: list[tuple[str, Callable]] = []
    for key in spec:
        if key not in FIELDS:
            raise SegmentError(
                f"segment: unknown field {key!r}; known: {', '.join(sorted(FIELDS))}"
            )
    for key in spec:
        if key == "name":
            continue
        rules.append((key, FIELDS[key](spec)))
    return Segment(dict(spec), tuple(rules))


def _tier(spec):
    tiers = _choices(spec, "tier", TIERS)
    return lambda f, today, p: f.tier in tiers


def _tier_at_least(spec):
    floor = spec["tier_at_least"]
    if floor not in TIERS:
        raise SegmentError(
            f"segment.tier_at_least: unknown tier {floor!r}; " f"allowed: {', '.join(TIERS)}"
        )
    allowed = set(TIERS[TIERS.index(floor) :])
    return lambda f, today, p: f.tier in allowed


def _tags(mode):
    def build(spec):
        key = f"tags_{mode}"
        wanted = [str(v) for v in _list(spec, key)]
        if not wanted or any(not v.strip() for v in wanted):
            raise SegmentError(f"segment.{key}: give at least one non-empty tag")
        test = any if mode == "any" else all
        return lambda f, today, p: test(v in f.tags for v in wanted)

    return build


def _scenario(spec):
    wanted = _choices(spec, "scenario", SCENARIOS)
    purposes = set().union(*(SCENARIOS[s] for s in wanted))
    return lambda f, today, p: bool(
        purposes & (f.purposes | {v for c, v in f.tag_pairs if c == "trip_purpose"})
    )


def _band(key, allowed, fn):
    def build(spec):
        wanted = _choices(spec, key, allowed)
        return lambda f, today, p: fn(f, today, p) in wanted

    return build


def _last_stay(direction):
    def build(spec):
        key = f"last_stay_{direction}"
        when = _when(spec[key], key)
        if direction == "before":
            return lambda f, today, p: f.last_stay is not None and f.last_stay.check_out < when(
                today
            )
        return lambda f, today, p: f.last_stay is not None and f.last_stay.check_out > when(today)

    return build


def _upcoming(spec):
    days = spec["upcoming_within_days"]
    if not isinstance(days, int) or days < 0:
        raise SegmentError(f"segment.upcoming_within_days: a whole number >= 0, got {days!r}")
    return lambda f, today, p: any((s.check_in - today).days <= days for s in f.upcoming)


def _in_set(key, attr):
    def build(spec):
        wanted = {str(v) for v in _list(spec, key)}
        if not wanted:
            raise SegmentError(f"segment.{key}: give at least one value")
        return lambda f, today, p: bool(wanted & getattr(f, attr))

    return build


def _channel(spec):
    wanted = {str(v) for v in _list(spec, "channel")}
    if not wanted:
        raise SegmentError("segment.channel: give at least one value")
    return lambda f, today, p: f.as_of is not None and f.booking_facts.channel in wanted


def _birthday(spec):
    words = _list(spec, "birthday_month")
    for w in words:
        _month(w, dt.date(2000, 1, 1))
    return lambda f, today, p: (
        f.birthday is not None and f.birthday.month in {_month(w, today) for w in words}
    )


def _consent(spec):
    value = spec["consent"]
    if value not in CONSENTS:
        raise SegmentError(f"segment.consent: {value!r}; allowed: {', '.join(CONSENTS)}")
    if value == "any":
        return lambda f, today, p: True
    wanted = value == "granted"
    return lambda f, today, p: bool(f.marketing_consent) is wanted


def _demo(spec):
    value = spec["demo"]
    if not isinstance(value, bool):
        raise SegmentError(f"segment.demo: true or false, got {value!r}")
    return lambda f, today, p: f.is_demo is value


# What each rule reads besides the guest row (bot.marketing.facts.load_facts `needs`).
NEEDS = {
    "tags_any": {"tags"},
    "tags_all": {"tags"},
    "scenario": {"bookings", "tags"},
    "lifecycle": {"bookings"},
    "value": {"bookings"},
    "frequency": {"bookings"},
    "health": {"bookings", "complaints", "interactions"},
    "last_stay_before": {"bookings"},
    "last_stay_after": {"bookings"},
    "upcoming_within_days": {"bookings"},
    "property": {"bookings"},
    "city": {"bookings"},
    "channel": {"bookings"},
    "consent": {"consent"},
}

FIELDS: dict[str, Callable[[dict], Callable]] = {
    "name": lambda spec: (lambda f, today, p: True),
    "tier": _tier,
    "tier_at_least": _tier_at_least,
    "tags_any": _tags("any"),
    "tags_all": _tags("all"),
    "scenario": _scenario,
    "lifecycle": _band("lifecycle", LIFECYCLES, lifecycle),
    "value": _band("value", BANDS, value_band),
    "frequency": _band("frequency", FREQUENCIES, frequency_band),
    "health": _band("health", HEALTH_BANDS, health_band),
    "last_stay_before": _last_stay("before"),
    "last_stay_after": _last_stay("after"),
    "upcoming_within_days": _upcoming,
    "property": _in_set("property", "properties"),
    "city": _in_set("city", "cities"),
    "channel": _channel,
    "birthday_month": _birthday,
    "consent": _consent,
    "demo": _demo,
}


def describe(f: GuestFacts, today: dt.date, policy: MarketingPolicy) -> dict:
    """The derived facts a marketer sees next to a guest in a segment listing."""
    last, nxt = f.last_stay, f.next_stay
    return {
        "sender_id": f.sender_id,
        "name": f.name,
        "tier": f.tier,
        "lifecycle": lifecycle(f, today, policy),
        "value": value_band(f, today, policy),
        "frequency": frequency_band(f, today, policy),
        "health": health_score(f, today, policy),
        "stays": len(f.stays),
        "last_stay": last.check_out.isoformat() if last else None,
        "spend_12m": float(f.booking_facts.spend_12m) if f.as_of else 0.0,
        "channel": f.booking_facts.channel if f.as_of else None,
        "next_stay": nxt.check_in.isoformat() if nxt else None,
        "marketing_consent": f.marketing_consent,
    }


def load_segment_file(path) -> Segment:
    data = read_yaml(path, SegmentError)
    if isinstance(data, dict) and "segment" in data:
        data = data["segment"]
    return parse_segment(data)

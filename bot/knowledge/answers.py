"""Guest-facing Chinese answers to pre-trip questions, rendered from bot/templates/pretrip/*.j2.

Why templates: wording is product copy (polite 您, short enough for a phone: 2-6 lines) and changes
without code review of the logic; this module only gathers facts from the trip, the forecast and
the knowledge base and picks the case. It never invents: a fact missing from the knowledge base
becomes "the hotel info doesn't list it, shall I get you an advisor?", and a stay beyond the
forecast horizon gets the month's climate norms marked 往年同期 plus the promise of the T-3 forecast.

All functions are pure (no I/O except reading the templates and, when `kb` is not given, the
process-wide knowledge base named by the settings).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterable, Sequence

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.knowledge.kb import KnowledgeBase, Property
from bot.knowledge.packing import PackingRules, WeatherSummary, advise, is_rainy
from bot.knowledge.trip import Addon, Trip
from bot.knowledge.weather import DailyForecast

__all__ = [
    "Trip",
    "Addon",
    "weather_answer",
    "packing_answer",
    "itinerary_answer",
    "checkin_answer",
    "checkout_answer",
    "amenity_answer",
    "amenity_overview_answer",
    "amenity_label",
    "directions_answer",
    "emergency_answer",
    "unknown_fact_answer",
    "no_booking_answer",
    "stay_label",
    "which_stay_question",
    "pretrip_reminder",
    "cn_date",
]

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "pretrip"
DEFAULT_HORIZON_DAYS = 7  # how far the forecast reaches when the caller does not say
REMINDER_DAYS_BEFORE = 3  # the T-3 touchpoint sends the forecast this many days before arrival
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
PET_WORDS = ("pet", "宠物", "狗", "猫")
ORDER_STATUS = {  # order statuses as the guest reads them; unknown ones are shown as they are
    "pending": "待确认",
    "new": "待确认",
    "paged": "处理中",
    "acknowledged": "处理中",
    "in_progress": "处理中",
    "confirmed": "已确认",
    "done": "已完成",
    "completed": "已完成",
    "cancelled": "已取消",
    "canceled": "已取消",
}


# ---- formatting filters -------------------------------------------------------------------------
def cn_date(d: date) -> str:
    """date(2025, 11, 30) -> "11月30日(周日)"."""
    return f"{d.month}月{d.day}日（{WEEKDAYS[d.weekday()]}）"


def month_day(d: date) -> str:
    return f"{d.month}月{d.day}日"


def fmt_temp(value: float) -> str:
    """28.0 -> "28", 27.5 -> "27.5": temperatures without a useless ".0"."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _fmt_when(value) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        # Stored in UTC; guests read hotel (China) time.
        from bot.core.time import CHINA_TZ

        if value.tzinfo is not None:
            value = value.astimezone(CHINA_TZ)
        return f"{month_day(value)} {value:%H:%M}"
    if isinstance(value, date):
        return month_day(value)
    return str(value)


# ---- the template environment (one, created on first use) --------------------------------------
_env: Environment | None = None
_env_lock = threading.Lock()


def _environment() -> Environment:
    global _env
    with _env_lock:
        if _env is None:
            env = Environment(
                loader=FileSystemLoader(str(TEMPLATE_DIR)),
                undefined=StrictUndefined,
                autoescape=False,
                lstrip_blocks=True,
            )
            env.filters.update(cn_date=cn_date, md=month_day, temp=fmt_temp)
            _env = env
        return _env


def _render(template: str, /, **context) -> str:
    """Render a template; drop blank lines and trailing spaces (WeCom shows them as gaps).

    Lines holding only a block tag render empty and are dropped here, which is why the
    environment does not need trim_blocks (that would also eat the newline after an inline
    `{% endif %}` at the end of a text line).
    """
    text = _environment().get_template(f"{template}.j2").render(**context)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def _kb(kb: KnowledgeBase | None) -> KnowledgeBase:
    return kb if kb is not None else KnowledgeBase.default()


def _climate_for(trip: Trip, kb: KnowledgeBase):
    prop = kb.property(trip.property_id)
    return prop.climate if prop else kb.climate(trip.city)


def _norms(climate, months: Iterable[int]) -> list[dict]:
    if climate is None:
        return []
    return [
        {
            "month": m,
            "high": climate.month(m).high,
            "low": climate.month(m).low,
            "rainy_days": climate.month(m).rainy_days,
            "rainy": m in climate.rainy_season,
            "typhoon": m in climate.typhoon_season,
        }
        for m in sorted(set(months))
    ]


def _has_pet(guest_tags: Iterable[str]) -> bool:
    return any(word in str(tag).lower() for tag in guest_tags or () for word in PET_WORDS)


# ---- weather and packing ------------------------------------------------------------------------
def weather_answer(
    trip: Trip,
    forecasts: Sequence[DailyForecast],
    today: date,
    *,
    kb: KnowledgeBase | None = None,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    remind: bool = True,
) -> str:
    """The weather for the stay (check-in to check-out day) from the forecast; the part beyond
    the forecast horizon as 往年同期 climate norms, with the T-3 forecast promised (`remind`:
    only for a booked stay, the touchpoint needs a booking to keep the promise)."""
    kb = _kb(kb)
    stay = trip.stay_days()
    start, end = stay[0], stay[-1]
    context = {"city": trip.city, "start": start, "end": end}
    if end < today:
        return _render("weather", mode="past", **context)

    by_date = {f.date: f for f in forecasts if start <= f.date <= end}
    covered = sorted(by_date)
    last_known = max([f.date for f in forecasts], default=None)
    horizon_end = max(today + timedelta(days=horizon_days - 1), last_known or today)
    climate = _climate_for(trip, kb)
    reminder = start - timedelta(days=REMINDER_DAYS_BEFORE)
    context.update(
        horizon_end=horizon_end, reminder=reminder, will_remind=remind and reminder > today
    )

    if covered:
        days = [by_date[d] for d in covered]
        later = [d for d in stay if d > covered[-1]]
        rules = PackingRules.load(kb.packing_rules_path)
        texts = Counter(f.text_day for f in days)
        context.update(
            mode="partial" if later else "forecast",
            covered_start=covered[0],
            covered_end=covered[-1],
            days=[
                {
                    "date": f.date,
                    "temp_min": f.temp_min,
                    "temp_max": f.temp_max,
                    "text": f.text_day
                    if f.text_night == f.text_day
                    else f"{f.text_day}转{f.text_night}",
                }
                for f in days
            ],
            temp_min=min(f.temp_min for f in days),
            temp_max=max(f.temp_max for f in days),
            main_text="、".join(t for t, _ in texts.most_common(2)),
            rainy_dates=[f.date for f in days if is_rainy(f, rules.rain_threshold_mm)],
            next_day=later[0] if later else None,
            norms=_norms(climate, (d.month for d in later)),
        )
    else:
        mode = "beyond" if start > horizon_end else "unavailable"
        context.update(mode=mode, norms=_norms(climate, (d.month for d in stay if d >= today)))
    return _render("weather", **context)


def packing_answer(
    trip: Trip, forecasts: Sequence[DailyForecast], *, kb: KnowledgeBase | None = None
) -> str:
    """What to wear and bring: forecast (or climate norms past the horizon) + purpose + property."""
    kb = _kb(kb)
    rules = PackingRules.load(kb.packing_rules_path)
    prop = kb.property(trip.property_id)
    climate = _climate_for(trip, kb)
    stay = trip.stay_days()
    in_stay = sorted((f for f in forecasts if stay[0] <= f.date <= stay[-1]), key=lambda f: f.date)
    # Days before the first forecast day are already past; only later days need the norms.
    later = [d for d in stay if d > in_stay[-1].date] if in_stay else stay
    from_forecast = (
        WeatherSummary.from_forecasts(in_stay, rules.rain_threshold_mm) if in_stay else None
    )
    from_climate = (
        WeatherSummary.from_climate(
            climate, (d.month for d in later), rules.climate_rain_likely_days
        )
        if climate and later
        else None
    )
    if from_forecast and from_climate:
        weather, basis = from_forecast.merged(from_climate), "mixed"
    elif from_forecast:
        weather, basis = from_forecast, "forecast"
    elif from_climate:
        weather, basis = from_climate, "climate"
    else:
        weather, basis = None, "none"
    advice = advise(
        rules,
        weather,
        purpose=trip.purpose,
        property_type=prop.type if prop else None,
        property_tags=prop.tags if prop else (),
    )
    return _render(
        "packing",
        city=trip.city,
        start=stay[0],
        end=stay[-1],
        basis=basis,
        weather=weather,
        lines=advice.lines,
        months=sorted({d.month for d in later}),
    )


# ---- the guest's bookings -----------------------------------------------------------------------
def itinerary_answer(trips: Sequence[Trip], *, kb: KnowledgeBase | None = None) -> str:
    """The guest's stays, soonest first: hotel, dates, nights, room, party, add-ons ordered."""
    if not trips:
        return no_booking_answer()
    kb = _kb(kb)
    rows = []
    for trip in sorted(trips, key=lambda t: t.check_in):
        prop = kb.property(trip.property_id)
        addons = []
        for entry in trip.addons:
            item, scheduled_at, status = entry
            addons.append(
                {
                    "item": item,
                    "when": _fmt_when(scheduled_at),
                    "status": ORDER_STATUS.get(str(status).lower(), str(status)),
                }
            )
        rows.append(
            {
                "name": prop.name if prop else f"{trip.city}的住宿",
                "check_in": trip.check_in,
                "check_out": trip.check_out,
                "nights": trip.nights,
                "room_type": trip.room_type,
                "party_size": trip.party_size,
                "addons": addons,
            }
        )
    return _render("itinerary", trips=rows)


def stay_label(trip: Trip) -> str:
    """A short name for one stay, for "which one?" buttons: "三亚 11月29日–12月2日"."""
    return _render("stay_label", trip=trip)


def which_stay_question(trips: Sequence[Trip]) -> str:
    """Asked when the guest has several stays and did not say which one the question is about.
    Numbered in the caller's order, so "第二个" means the caller's second trip."""
    return _render("which_stay", trips=[{"label": stay_label(t)} for t in trips])


def no_booking_answer() -> str:
    return _render("no_booking")


# ---- property facts -----------------------------------------------------------------------------
def checkin_answer(prop: Property) -> str:
    return _render("checkin", prop=prop)


def checkout_answer(prop: Property) -> str:
    return _render("checkout", prop=prop, luggage=prop.amenity("luggage"))


def amenity_answer(
    prop: Property, key: str, guest_tags: Iterable[str] = (), *, kb: KnowledgeBase | None = None
) -> str:
    """One amenity from the knowledge base (`key` may be a canonical key or a guest word).

    Not listed for this property -> the unknown-fact answer. A guest tagged with a pet also hears
    the pet policy (or that the hotel does not list one).
    """
    kb = _kb(kb)
    resolved = kb.resolve_amenity_key(key)
    if resolved is None:
        return unknown_fact_answer(prop, key)
    amenity = prop.amenity(resolved)
    if amenity is None:
        return unknown_fact_answer(prop, kb.vocabulary[resolved].label)
    pet_policy = prop.amenity("pet_policy")
    pet = None
    if resolved != "pet_policy" and _has_pet(guest_tags):
        pet = "listed" if pet_policy else "unlisted"
    return _render("amenity", prop=prop, a=amenity, pet=pet, pet_policy=pet_policy)


def amenity_overview_answer(prop: Property, guest_tags: Iterable[str] = ()) -> str:
    """ "What does the hotel have?": the labels of the amenities the property lists."""
    pet_policy = prop.amenity("pet_policy")
    pet = ("listed" if pet_policy else "unlisted") if _has_pet(guest_tags) else None
    labels = [a.label for key, a in prop.amenities.items() if key != "pet_policy"]
    return _render("amenity_overview", prop=prop, labels=labels, pet=pet, pet_policy=pet_policy)


def amenity_label(key_or_text: str, *, kb: KnowledgeBase | None = None) -> str:
    """ "kids_club" or "儿童乐园" -> "儿童俱乐部"; any other text is returned as it is."""
    return _kb(kb).amenity_label(key_or_text)


def directions_answer(prop: Property, origin: str | None = None) -> str:
    """How to get there: one route when `origin` names a listed one ("机场", "高铁"), all routes
    briefly when no origin is given, and "not listed" + the address for any other origin."""
    route = None
    if origin:
        needle = origin.strip().lower()
        best = 0
        for r in prop.directions:
            for word in (r.origin, r.key, *r.aliases):
                w = word.lower()
                if w and (w in needle or needle in w) and len(w) > best:
                    best, route = len(w), r
    return _render("directions", prop=prop, route=route, origin=origin, routes=prop.directions)


def emergency_answer(prop: Property) -> str:
    return _render("emergency", prop=prop, e=prop.emergency, h=prop.emergency.hospital)


def unknown_fact_answer(prop: Property | None, what: str) -> str:
    """The bot does not know `what`: it says so and offers a human (and the front desk phone)."""
    return _render("unknown_fact", prop=prop, what=what)


# ---- touchpoint ---------------------------------------------------------------------------------
def pretrip_reminder(
    trip: Trip, forecasts: Sequence[DailyForecast], today: date, *, kb: KnowledgeBase | None = None
) -> str:
    """The T-3 message: weather for the stay, what to pack, emergency contacts, a dining tip."""
    kb = _kb(kb)
    prop = kb.property(trip.property_id)
    return _render(
        "reminder",
        trip=trip,
        prop=prop,
        name=prop.name if prop else f"{trip.city}的住宿",
        weather=weather_answer(trip, forecasts, today, kb=kb),
        packing=packing_answer(trip, forecasts, kb=kb),
        tip=prop.dining_tips[0] if prop and prop.dining_tips else None,
    )

"""Pre-trip questions answered from the guest's own bookings and the property knowledge base.

The service decides *which stay* a question is about (one upcoming booking, the one the guest
named, or "which one?" when there are several) and hands the facts to the answer templates in
`bot.knowledge.answers`. It never makes a fact up: no booking, no property fact, no forecast
each have their own honest reply.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from bot.bookings.texts import render as render_bookings
from bot.crm.store import CRMStore
from bot.knowledge import answers
from bot.knowledge.kb import KnowledgeBase
from bot.knowledge.weather import WeatherProvider, WeatherUnavailable, china_today
from bot.crm.store import CHINA_TZ

log = logging.getLogger(__name__)

# Topics that are about one stay (and so need to know which); itinerary covers all of them.
STAY_TOPICS = ("weather", "packing", "checkin", "checkout", "amenity", "directions", "emergency")
TOPICS = STAY_TOPICS + ("itinerary",)

_ORDINALS = {"一": 1, "1": 1, "二": 2, "两": 2, "2": 2, "三": 3, "3": 3, "四": 4, "4": 4}
_ORDINAL_RE = re.compile(r"第\s*([一二两三四1-4])\s*[个次趟]?")


@dataclass(frozen=True)
class Reply:
    """What the bot says back; `buttons` become WeCom menu items, `pending_topic` is remembered
    while the guest picks a stay."""

    texts: tuple[str, ...]
    buttons: tuple[dict, ...] = ()
    pending_topic: str | None = None
    offered_human: bool = False
    # No booking on file for this WeCom identity: the reply asks for a booking number or phone
    # (the guest's answer starts the identity-linking form, bot.bookings.identity).
    link_needed: bool = False


# Words that show a packing question also asks about the weather ("天气怎么样？要带什么衣服？"):
# the weather answer already ends with the packing list, so that one message gets both.
WEATHER_CUES = (
    "天气",
    "天氣",
    "气温",
    "氣溫",
    "温度",
    "溫度",
    "预报",
    "預報",
    "下雨",
    "几度",
    "幾度",
    "冷不冷",
    "热不热",
    "熱不熱",
)


def asks_weather_too(text: str | None) -> bool:
    return bool(text) and any(cue in text for cue in WEATHER_CUES)


@dataclass
class PreTripService:
    store: CRMStore
    kb: KnowledgeBase
    weather: WeatherProvider
    today: Callable[[], dt.date] = field(default=china_today)

    # ---- entry points -------------------------------------------------------------------
    def answer(
        self,
        topic: str,
        sender_id: str,
        *,
        amenity: str | None = None,
        destination: str | None = None,
        booking_id: str | None = None,
        text: str | None = None,
        may_ask_link: bool = True,
    ) -> Reply:
        """`text`: the guest's message, for two questions in one (weather + packing) and for
        the city, dates or hotel a guest without a booking names. `may_ask_link`: False once
        the guest was asked for a booking reference in this conversation (asked once)."""
        if topic not in TOPICS:
            raise ValueError(f"unknown pre-trip topic {topic!r}")
        if topic == "packing" and asks_weather_too(text):
            topic = "weather"
        bookings = self.store.upcoming_bookings(sender_id, self.today())
        if not bookings:
            return self._without_booking(
                topic,
                sender_id,
                amenity=amenity,
                destination=destination,
                text=text or "",
                may_ask_link=may_ask_link,
            )
        if topic == "itinerary":
            return Reply((answers.itinerary_answer([self._trip(b) for b in bookings], kb=self.kb),))

        chosen = _pick(bookings, booking_id=booking_id, destination=destination)
        if chosen is None:
            return self._ask_which_stay(topic, bookings)
        return self._answer_for(topic, sender_id, chosen, amenity=amenity)

    def reminder(self, booking, today: dt.date) -> str:
        """The T-3 touchpoint's practical part for `booking` (a BookingDTO): weather for the
        stay, what to pack, emergency contacts, a dining tip (bot.marketing.touchpoints)."""
        trip = self._trip(booking)
        return answers.pretrip_reminder(trip, self._forecasts(trip), today, kb=self.kb)

    def choose_stay(
        self,
        sender_id: str,
        pending_topic: str | None,
        *,
        text: str = "",
        destination: str | None = None,
        booking_id: str | None = None,
        amenity: str | None = None,
    ) -> Reply:
        """The guest answered "which stay?": by button (booking id), city, or "第二个"."""
        bookings = self.store.upcoming_bookings(sender_id, self.today())
        if not bookings:
            return Reply((answers.no_booking_answer(),), offered_human=True)
        chosen = _pick(bookings, booking_id=booking_id, destination=destination, text=text)
        topic = pending_topic if pending_topic in STAY_TOPICS else "itinerary"
        if chosen is None:
            return self._ask_which_stay(topic, bookings)
        if topic == "itinerary":
            return Reply((answers.itinerary_answer([self._trip(chosen)], kb=self.kb),))
        return self._answer_for(topic, sender_id, chosen, amenity=amenity)

    # ---- without a booking -----------------------------------------------------------------
    def _without_booking(
        self, topic: str, sender_id: str, *, amenity, destination, text: str, may_ask_link: bool
    ) -> Reply:
        """What needs no booking is answered from the city or hotel the guest names; the rest
        needs their booking: asked for once (link_needed), then said plainly."""
        plain = to_simplified(text)
        if topic in ("weather", "packing"):
            city = self._named_city(destination, plain)
            if city:
                start, end = named_dates(plain, self.today())
                trip = answers.Trip(property_id="", city=city, check_in=start, check_out=end)
                return self._weather_reply(topic, trip, remind=False)
        if topic in ("checkin", "checkout", "amenity", "directions", "emergency"):
            prop = self._named_property(destination, plain)
            if prop is not None:
                return self._property_reply(topic, sender_id, prop, amenity=amenity)
        if self.store.bookings(sender_id):  # linked, just nothing coming up
            return Reply((answers.no_booking_answer(),), offered_human=True)
        if may_ask_link:
            return Reply((render_bookings("ask_link", asked_before=False),), link_needed=True)
        return Reply((render_bookings("ask_link", asked_before=True),), offered_human=True)

    def _named_city(self, destination: str | None, text: str) -> str | None:
        if destination and destination.strip():
            return to_simplified(destination.strip())
        cities = sorted({p.city for p in self.kb.properties()}, key=len, reverse=True)
        return next((c for c in cities if c in text), None)

    def _named_property(self, destination: str | None, text: str):
        """The hotel the guest names (its name, its name without city and 酒店, a code), or the
        only one in the city they name."""
        for prop in self.kb.properties():
            short = re.sub(r"(度假)?(酒店|饭店|宾馆)$", "", prop.name).replace(prop.city, "", 1)
            names = {prop.name, *(c for c in prop.codes)} | ({short} if len(short) >= 2 else set())
            if any(n and n.lower() in text.lower() for n in names):
                return prop
        city = self._named_city(destination, text)
        in_city = [p for p in self.kb.properties() if city and p.city == city]
        return in_city[0] if len(in_city) == 1 else None

    # ---- helpers --------------------------------------------------------------------------
    def _weather_reply(self, topic: str, trip, *, remind: bool = True) -> Reply:
        forecasts = self._forecasts(trip)
        if topic == "weather":
            text = answers.weather_answer(
                trip,
                forecasts,
                self.today(),
                kb=self.kb,
                horizon_days=self.weather.horizon_days,
                remind=remind,
            )
            return Reply((text, answers.packing_answer(trip, forecasts, kb=self.kb)))
        return Reply((answers.packing_answer(trip, forecasts, kb=self.kb),))

    def _answer_for(self, topic: str, sender_id: str, booking, *, amenity: str | None) -> Reply:
        trip = self._trip(booking)
        prop = self.kb.property(trip.property_id)
        if prop is None:
            log.warning("booking %s names unknown property %s", booking.id, trip.property_id)
            return Reply((answers.unknown_fact_answer(None, "这家酒店的资料"),), offered_human=True)

        if topic in ("weather", "packing"):
            return self._weather_reply(topic, trip)
        return self._property_reply(topic, sender_id, prop, amenity=amenity)

    def _property_reply(self, topic: str, sender_id: str, prop, *, amenity: str | None) -> Reply:
        if topic == "checkin":
            return Reply((answers.checkin_answer(prop),))
        if topic == "checkout":
            return Reply((answers.checkout_answer(prop),))
        if topic == "directions":
            return Reply((answers.directions_answer(prop),))
        if topic == "emergency":
            return Reply((answers.emergency_answer(prop),))
        # amenity
        if not amenity:
            return Reply(
                (answers.amenity_overview_answer(prop, self.store.active_tag_values(sender_id)),)
            )
        if self.kb.amenity(prop.id, amenity) is None:
            return Reply(
                (answers.unknown_fact_answer(prop, answers.amenity_label(amenity, kb=self.kb)),),
                offered_human=True,
            )
        tags = self.store.active_tag_values(sender_id)
        return Reply((answers.amenity_answer(prop, amenity, guest_tags=tags, kb=self.kb),))

    def _forecasts(self, trip) -> list:
        try:
            return list(self.weather.daily(trip.city, trip.check_in, trip.check_out))
        except WeatherUnavailable as exc:  # the answer falls back to climate norms, said so
            log.warning("weather unavailable for %s: %s", trip.city, exc)
            return []

    def _ask_which_stay(self, topic: str, bookings: Sequence) -> Reply:
        trips = [self._trip(b) for b in bookings]
        buttons = tuple(
            {"title": answers.stay_label(t), "payload": f'/choose_stay{{"booking_id":"{b.id}"}}'}
            for b, t in zip(bookings, trips)
        )
        return Reply((answers.which_stay_question(trips),), buttons=buttons, pending_topic=topic)

    def _trip(self, booking) -> answers.Trip:
        orders = self.store.orders_for_booking(booking.id)
        return answers.Trip(
            property_id=booking.property_id,
            city=booking.city,
            check_in=booking.check_in,
            check_out=booking.check_out,
            room_type=booking.room_type,
            purpose=booking.purpose,
            party_size=booking.party_size,
            addons=[(o.item, o.scheduled_at, o.status) for o in orders if o.status != "cancelled"],
        )


def _pick(bookings: Sequence, *, booking_id=None, destination=None, text: str = ""):
    """The one booking the guest means, or None when it is still ambiguous."""
    if booking_id is not None:
        for b in bookings:
            if str(b.id) == str(booking_id):
                return b
    if destination:
        matches = [
            b for b in bookings if b.city and (b.city in destination or destination in b.city)
        ]
        if len(matches) == 1:
            return matches[0]
    if text:
        matches = [b for b in bookings if b.city and b.city in text]
        if len(matches) == 1:
            return matches[0]
        found = _ORDINAL_RE.search(text)
        if found:
            index = _ORDINALS[found.group(1)] - 1
            if 0 <= index < len(bookings):
                return bookings[index]
    if len(bookings) == 1:
        return bookings[0]
    return None


_WEEK = re.compile(r"^(下|这|本|下个|下一个|這|下個)(周|星期|礼拜|禮拜|週)$")
_WEEKEND = re.compile(r"周末|週末")
MAX_NAMED_DAYS = 14


def to_simplified(text: str) -> str:
    """Traditional to simplified (OpenCC t2s, loaded once), so 三亞/下禮拜 parse like 三亚/下礼拜."""
    if not text:
        return text
    return _t2s().convert(text)


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc  # imported on first use: never at module import time

    return opencc.OpenCC("t2s")


def named_dates(text: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days a guest without a booking names ("下周", "这周末", "12月5号", "明天"): a week
    word is that week, a weekend its two days, a day that day; nothing named: the next three
    days. Never before today, never longer than two weeks."""
    from bot.orders.when import find_when  # JioNLP: loaded on first use

    now = dt.datetime.combine(today, dt.time(12), tzinfo=CHINA_TZ)
    found = find_when(text, now)
    if found is None:
        start, end = today, today + dt.timedelta(days=2)
    else:
        start = found.day
        span = found.text.strip()
        if found.end is not None:
            end = found.end.date()
        elif _WEEK.match(span):
            end = start + dt.timedelta(days=6)
        elif _WEEKEND.search(span):  # JioNLP dates 周末 by its Sunday: take Saturday too
            start -= dt.timedelta(days=max(start.weekday() - 5, 0))
            end = start + dt.timedelta(days=1)
        else:
            end = start
    start = max(start, today)
    end = min(max(end, start), start + dt.timedelta(days=MAX_NAMED_DAYS - 1))
    return start, end

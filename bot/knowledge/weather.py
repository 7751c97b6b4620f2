"""Daily weather forecasts for a city and a date range, behind one small interface.

Why an interface: production asks QWeather (和风天气), while `make run`, the demo and the tests must
work offline and give the same answer every time. Both providers return the same `DailyForecast`
rows, and both only know days inside their forecast horizon (a real forecast reaches 3-30 days
ahead depending on the plan), so callers must expect *fewer days than asked* and fall back to the
climate norms in the knowledge base, saying so, instead of inventing a forecast.

Failures (bad key, quota, timeout, unknown city) raise one typed error, `WeatherUnavailable`, so the
caller has exactly one thing to catch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any, Callable, Protocol, runtime_checkable
from urllib.parse import urlparse

import requests

from bot.core.time import china_today

log = logging.getLogger(__name__)

FORECAST_DAYS = ("3d", "7d", "10d", "15d", "30d")
LEGACY_API_HOSTS = ("devapi.qweather.com", "api.qweather.com")
LEGACY_GEO_BASE = "https://geoapi.qweather.com/v2"
LOCATION_TTL_S = 7 * 24 * 3600  # a city's location id practically never changes

# QWeather's v1 status codes (the `code` field of every response body).
QWEATHER_CODES = {
    "204": "no data for this location right now",
    "400": "bad request (wrong or missing parameter)",
    "401": "authentication failed (wrong key or key type)",
    "402": "request quota used up or balance too low",
    "403": "no permission (key restrictions or paid data)",
    "404": "location or data does not exist",
    "429": "too many requests per minute (QPM)",
    "500": "QWeather did not respond or timed out",
}
RETRYABLE_CODES = {"429", "500", "timeout", "network"}


@dataclass(frozen=True)
class DailyForecast:
    date: date
    text_day: str  # "多云"
    text_night: str  # "晴"
    temp_min: float  # °C
    temp_max: float  # °C
    precip_mm: float
    humidity: int | None  # %
    uv_index: int | None
    wind: str  # "东北风3-4级", for people
    wind_scale_max: int | None = None  # 4 for "3-4", for rules

    def to_json(self) -> str:
        data = asdict(self)
        data["date"] = self.date.isoformat()
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> "DailyForecast":
        data = json.loads(text)
        data["date"] = date.fromisoformat(data["date"])
        return cls(**data)


class WeatherUnavailable(RuntimeError):
    """No forecast could be had. `code` is QWeather's code ("401", "402", "404", "429", ...) or one
    of ours: "timeout", "network", "bad_response", "unknown_city"."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"weather unavailable ({code}): {reason}")
        self.code = code
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


@runtime_checkable
class WeatherProvider(Protocol):
    horizon_days: int

    def daily(self, city: str, start: date, end: date) -> list[DailyForecast]:
        """Forecasts for the days of [start, end] (both included) that the provider can see.

        May return fewer days than asked (or none) when the range reaches past the horizon.
        Raises WeatherUnavailable when the provider cannot answer at all.
        """
        ...


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


# ---- caches -------------------------------------------------------------------------------------
class _MemoryCache:
    """A dict with expiry, for one process (the default without Redis)."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._data: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if hit[0] <= self._clock():
                del self._data[key]
                return None
            return hit[1]

    def set(self, key: str, value: str, ttl_s: int) -> None:
        with self._lock:
            self._data[key] = (self._clock() + ttl_s, value)


class _RedisCache:
    """Redis-backed, shared by every process; a Redis failure degrades to a cache miss."""

    def __init__(self, client: Any):
        self._client = client

    def get(self, key: str) -> str | None:
        try:
            value = self._client.get(key)
        except Exception as exc:  # the cache is an optimisation: never fail a forecast over it
            log.warning("weather cache read failed: %s", exc)
            return None
        return value.decode() if isinstance(value, bytes) else value

    def set(self, key: str, value: str, ttl_s: int) -> None:
        try:
            self._client.set(key, value, ex=ttl_s)
        except Exception as exc:
            log.warning("weather cache write failed: %s", exc)


# ---- QWeather -----------------------------------------------------------------------------------
def _with_scheme(host: str) -> str:
    host = host.strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


def geo_base_for(api_host: str) -> str:
    """Where GeoAPI lives for an API host: the public legacy hosts use geoapi.qweather.com/v2,
    a per-account API host (and a test server) serves it under /geo/v2."""
    api_host = _with_scheme(api_host)
    if urlparse(api_host).hostname in LEGACY_API_HOSTS:
        return LEGACY_GEO_BASE
    return f"{api_host}/geo/v2"


def _scale_max(scale: str) -> int | None:
    numbers = [int(p) for p in str(scale).replace("级", "").split("-") if p.strip().isdigit()]
    return max(numbers) if numbers else None


def _to_int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


class QWeatherProvider:
    """The QWeather v7 daily forecast: GeoAPI city lookup, then /v7/weather/{days}.

    Every call has a timeout; answers are cached per (city, date) for `cache_ttl_s`, in Redis when
    a client is given (shared by all processes), else in this process. The range a response
    covered is cached too, so asking for days past the horizon does not call the API again.
    """

    def __init__(
        self,
        *,
        api_host: str,
        key: str,
        timeout_s: float = 3.0,
        geo_base: str | None = None,
        days: str = "7d",
        cache_ttl_s: int = 3600,
        redis: Any = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        lang: str = "zh",
    ):
        if days not in FORECAST_DAYS:
            raise ValueError(
                f"QWeather forecast length must be one of {FORECAST_DAYS}, got {days!r}"
            )
        if not key:
            raise ValueError("QWeather needs an API key (QWEATHER_KEY)")
        self._api_base = _with_scheme(api_host)
        self._geo_base = (geo_base or geo_base_for(api_host)).rstrip("/")
        self._key = key
        self._timeout = timeout_s
        self._days = days
        self._ttl = int(cache_ttl_s)
        self._lang = lang
        self._session = session or requests.Session()
        self._cache = _RedisCache(redis) if redis is not None else _MemoryCache(clock)
        self.horizon_days = int(days[:-1])

    # public -----------------------------------------------------------------------------------
    def daily(self, city: str, start: date, end: date) -> list[DailyForecast]:
        wanted = _days(start, end)
        if not wanted:
            return []
        found = self._cached_days(city, wanted)
        covered = self._cached_coverage(city)
        missing = [
            d
            for d in wanted
            if d not in found and not (covered and not covered[0] <= d <= covered[1])
        ]
        if missing:
            fresh = self._fetch(city)
            self._store(city, fresh)
            found.update({f.date: f for f in fresh if f.date in set(wanted)})
        return [found[d] for d in wanted if d in found]

    # cache ------------------------------------------------------------------------------------
    def _key_day(self, city: str, day: date) -> str:
        return f"weather:qweather:{self._days}:{city}:{day.isoformat()}"

    def _key_coverage(self, city: str) -> str:
        return f"weather:qweather:{self._days}:{city}:coverage"

    def _cached_days(self, city: str, wanted: list[date]) -> dict[date, DailyForecast]:
        found = {}
        for day in wanted:
            raw = self._cache.get(self._key_day(city, day))
            if raw:
                found[day] = DailyForecast.from_json(raw)
        return found

    def _cached_coverage(self, city: str) -> tuple[date, date] | None:
        raw = self._cache.get(self._key_coverage(city))
        if not raw:
            return None
        first, last = raw.split("/")
        return date.fromisoformat(first), date.fromisoformat(last)

    def _store(self, city: str, days: list[DailyForecast]) -> None:
        for f in days:
            self._cache.set(self._key_day(city, f.date), f.to_json(), self._ttl)
        if days:
            first, last = min(f.date for f in days), max(f.date for f in days)
            self._cache.set(self._key_coverage(city), f"{first}/{last}", self._ttl)

    # HTTP -------------------------------------------------------------------------------------
    def _location_id(self, city: str) -> str:
        cache_key = f"weather:qweather:location:{city}"
        cached = self._cache.get(cache_key)
        if cached:
            return cached
        body = self._get(f"{self._geo_base}/city/lookup", {"location": city, "number": 1})
        locations = body.get("location") or []
        if not locations or not locations[0].get("id"):
            raise WeatherUnavailable("unknown_city", f"QWeather GeoAPI knows no city {city!r}")
        location_id = str(locations[0]["id"])
        self._cache.set(cache_key, location_id, LOCATION_TTL_S)
        return location_id

    def _fetch(self, city: str) -> list[DailyForecast]:
        location_id = self._location_id(city)
        body = self._get(f"{self._api_base}/v7/weather/{self._days}", {"location": location_id})
        try:
            return [self._parse_day(d) for d in body.get("daily") or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise WeatherUnavailable(
                "bad_response", f"unexpected daily forecast shape: {exc!r}"
            ) from None

    def _get(self, url: str, params: dict) -> dict:
        try:
            resp = self._session.get(
                url, params={**params, "lang": self._lang, "key": self._key}, timeout=self._timeout
            )
        except requests.Timeout:
            raise WeatherUnavailable(
                "timeout", f"no answer within {self._timeout}s from {_origin(url)}"
            ) from None
        except requests.RequestException as exc:  # `from None`: the URL in exc carries the key
            raise WeatherUnavailable(
                "network", f"{type(exc).__name__} calling {_origin(url)}"
            ) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200:
            # Error code v2: the HTTP status is the code, details in {"error": {...}}.
            error = body.get("error") if isinstance(body, dict) else None
            code = str((error or {}).get("status") or resp.status_code)
            title = (error or {}).get("title") or QWEATHER_CODES.get(
                code, f"HTTP {resp.status_code}"
            )
            raise WeatherUnavailable(code, title)
        if not isinstance(body, dict):
            raise WeatherUnavailable("bad_response", f"{_origin(url)} did not answer JSON")
        code = str(body.get("code", ""))
        if code != "200":  # error code v1: HTTP 200 with the code in the body
            raise WeatherUnavailable(
                code or "bad_response", QWEATHER_CODES.get(code, "unexpected code")
            )
        return body

    @staticmethod
    def _parse_day(d: dict) -> DailyForecast:
        return DailyForecast(
            date=date.fromisoformat(d["fxDate"]),
            text_day=d["textDay"],
            text_night=d.get("textNight") or d["textDay"],
            temp_min=float(d["tempMin"]),
            temp_max=float(d["tempMax"]),
            precip_mm=float(d.get("precip") or 0.0),
            humidity=_to_int(d.get("humidity")),
            uv_index=_to_int(d.get("uvIndex")),
            wind=f"{d.get('windDirDay', '')}{d.get('windScaleDay', '')}级".strip(),
            wind_scale_max=_scale_max(d.get("windScaleDay", "")),
        )


def _origin(url: str) -> str:
    """The URL without its query (which carries the key): safe to log."""
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# ---- demo ---------------------------------------------------------------------------------------
_WIND_DIRS = ("东风", "东南风", "南风", "西南风", "西风", "西北风", "北风", "东北风")


class DemoWeatherProvider:
    """DEMO ONLY: invented forecasts, plausible for the city and season, never real weather.

    Each day is derived from the knowledge base's climate norms for the city's month plus a
    variation seeded by (city, date), so the same city and date always give the same forecast
    (tests and demos can rely on it). Like a real forecast it only covers today and the next
    `horizon_days - 1` days of the injected clock.
    """

    def __init__(self, kb, today: Callable[[], date] = china_today, horizon_days: int = 7):
        self._kb = kb
        self._today = today
        self.horizon_days = horizon_days

    def daily(self, city: str, start: date, end: date) -> list[DailyForecast]:
        climate = self._kb.climate(city)
        if climate is None:
            raise WeatherUnavailable(
                "unknown_city", f"no climate norms for {city!r} in the knowledge base"
            )
        today = self._today()
        first = max(start, today)
        last = min(end, today + timedelta(days=self.horizon_days - 1))
        return [self._day(city, climate, d) for d in _days(first, last)] if first <= last else []

    @staticmethod
    def _day(city: str, climate, day: date) -> DailyForecast:
        seed = hashlib.sha256(f"{city}|{day.isoformat()}".encode()).digest()
        rng = random.Random(int.from_bytes(seed[:8], "big"))
        norm = climate.month(day.month)
        shift = rng.uniform(-2.5, 2.5)
        temp_max = round(norm.high + shift)
        temp_min = min(round(norm.low + shift + rng.uniform(-1.5, 1.0)), temp_max - 3)
        rainy = rng.random() < norm.rainy_days / 30
        if rainy:
            per_day = norm.rain_mm / max(norm.rainy_days, 1)
            precip = round(rng.uniform(1.5, max(2.0, 2 * per_day)), 1)
            if precip >= 25:
                text_day = "大雨"
            elif precip >= 10:
                text_day = "雷阵雨" if temp_max >= 28 else "中雨"
            else:
                text_day = "阵雨" if temp_max >= 28 else "小雨"
            text_night = text_day if rng.random() < 0.5 else "阴"
            uv = max(1, norm.uv - 5)
        else:
            precip = 0.0
            text_day = rng.choice(("晴", "晴", "多云", "多云", "阴"))
            text_night = rng.choice(("晴", "多云", "阴"))
            uv = max(1, norm.uv - (2 if text_day == "阴" else rng.randint(0, 1)))
        scale = max(1, norm.wind_scale + rng.choice((-1, 0, 0, 1)))
        return DailyForecast(
            date=day,
            text_day=text_day,
            text_night=text_night,
            temp_min=float(temp_min),
            temp_max=float(temp_max),
            precip_mm=precip,
            humidity=max(30, min(100, norm.humidity + rng.randint(-6, 6))),
            uv_index=uv,
            wind=f"{rng.choice(_WIND_DIRS)}{scale}-{scale + 1}级",
            wind_scale_max=scale + 1,
        )


# ---- factory ------------------------------------------------------------------------------------
def get_weather_provider(
    settings,
    kb,
    *,
    redis: Any = None,
    today: Callable[[], date] | None = None,
    session: requests.Session | None = None,
) -> WeatherProvider:
    """The provider the settings ask for: "demo" (default, offline) or "qweather"."""
    kind = (settings.weather_provider or "demo").strip().lower()
    if kind == "demo":
        return DemoWeatherProvider(kb, today=today or china_today)
    if kind == "qweather":
        if not settings.qweather_key:
            raise ValueError("WEATHER_PROVIDER=qweather needs QWEATHER_KEY to be set")
        if redis is None and settings.redis_url:
            import redis as redis_lib  # imported here: only the qweather setup needs it

            redis = redis_lib.Redis.from_url(settings.redis_url)  # connects on first command
        return QWeatherProvider(
            api_host=settings.qweather_api_host,
            key=settings.qweather_key,
            timeout_s=settings.weather_timeout_s,
            geo_base=getattr(settings, "qweather_geo_base", None),
            days=getattr(settings, "qweather_forecast_days", "7d"),
            cache_ttl_s=getattr(settings, "weather_cache_ttl_s", 3600),
            redis=redis,
            session=session,
        )
    raise ValueError(f"unknown WEATHER_PROVIDER {kind!r}: use 'demo' or 'qweather'")

"""The QWeather client against recorded responses served from 127.0.0.1: parsing, error codes,
timeouts and caching."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest

from bot.knowledge.weather import DailyForecast, QWeatherProvider, WeatherUnavailable, geo_base_for

from ..conftest import REDIS_TEST_URL, require_service
from .conftest import fixture_text

KEY = "test-key-0123456789"
START, END = date(2025, 11, 29), date(2025, 12, 2)


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def provider(stub, **kwargs) -> QWeatherProvider:
    return QWeatherProvider(
        api_host=stub.base, key=KEY, timeout_s=kwargs.pop("timeout_s", 2.0), **kwargs
    )


def test_lookup_then_daily_forecast_parsed(qweather):
    days = provider(qweather).daily("三亚", START, END)
    assert qweather.paths() == ["/geo/v2/city/lookup", "/v7/weather/7d"]
    geo_query, weather_query = qweather.requests[0][1], qweather.requests[1][1]
    assert geo_query["location"] == ["三亚"] and geo_query["key"] == [KEY]
    assert weather_query["location"] == ["101310201"] and weather_query["key"] == [KEY]

    recorded = json.loads(fixture_text("qweather_weather_7d_sanya.json"))["daily"]
    assert [d.date.isoformat() for d in days] == [r["fxDate"] for r in recorded[:4]]
    first, rainy = days[0], days[2]
    assert isinstance(first, DailyForecast)
    assert (first.text_day, first.text_night) == (recorded[0]["textDay"], recorded[0]["textNight"])
    assert (first.temp_min, first.temp_max) == (
        float(recorded[0]["tempMin"]),
        float(recorded[0]["tempMax"]),
    )
    assert first.humidity == int(recorded[0]["humidity"]) and first.uv_index == int(
        recorded[0]["uvIndex"]
    )
    assert first.wind == f'{recorded[0]["windDirDay"]}{recorded[0]["windScaleDay"]}级'
    assert rainy.precip_mm == float(recorded[2]["precip"]) and rainy.wind_scale_max == 5


def test_fewer_days_than_asked_past_the_horizon(qweather):
    days = provider(qweather).daily("三亚", date(2025, 12, 4), date(2025, 12, 12))
    assert [d.date for d in days] == [date(2025, 12, 4), date(2025, 12, 5)]


@pytest.mark.parametrize("code", ["401", "402", "404", "429", "204"])
def test_v1_error_codes_in_the_body(qweather, code):
    qweather.route("/v7/weather/7d", fixture=f"qweather_v1_error_{code}.json")
    with pytest.raises(WeatherUnavailable) as err:
        provider(qweather).daily("三亚", START, END)
    assert err.value.code == code
    assert err.value.retryable == (code == "429")
    assert KEY not in str(err.value)


@pytest.mark.parametrize("code", ["401", "429"])
def test_v2_error_codes_as_http_status(qweather, code):
    qweather.route("/v7/weather/7d", fixture=f"qweather_v2_error_{code}.json", status=int(code))
    with pytest.raises(WeatherUnavailable) as err:
        provider(qweather).daily("三亚", START, END)
    assert err.value.code == code
    assert (
        err.value.reason
        == json.loads(fixture_text(f"qweather_v2_error_{code}.json"))["error"]["title"]
    )


def test_unknown_city(qweather):
    qweather.route("/geo/v2/city/lookup", fixture="qweather_v1_error_404.json")
    with pytest.raises(WeatherUnavailable) as err:
        provider(qweather).daily("不存在市", START, END)
    assert err.value.code == "404"
    qweather.route("/geo/v2/city/lookup", body={"code": "200", "location": []})
    with pytest.raises(WeatherUnavailable, match="unknown_city"):
        provider(qweather).daily("不存在市", START, END)


def test_not_json_and_bad_shape(qweather):
    qweather.routes["/v7/weather/7d"] = (200, "<html>gateway</html>", 0.0)
    with pytest.raises(WeatherUnavailable, match="bad_response"):
        provider(qweather).daily("三亚", START, END)
    qweather.route("/v7/weather/7d", body={"code": "200", "daily": [{"fxDate": "2025-11-29"}]})
    with pytest.raises(WeatherUnavailable, match="bad_response"):
        provider(qweather).daily("三亚", START, END)


def test_timeout(qweather):
    qweather.route("/v7/weather/7d", fixture="qweather_weather_7d_sanya.json", delay=1.0)
    with pytest.raises(WeatherUnavailable) as err:
        provider(qweather, timeout_s=0.2).daily("三亚", START, END)
    assert err.value.code == "timeout" and err.value.retryable


def test_network_error_does_not_leak_the_key():
    p = QWeatherProvider(api_host="http://127.0.0.1:9", key=KEY, timeout_s=0.5)
    with pytest.raises(WeatherUnavailable) as err:
        p.daily("三亚", START, END)
    assert err.value.code == "network"
    assert (
        KEY not in str(err.value) and err.value.__cause__ is None and err.value.__suppress_context__
    )


def test_second_call_is_served_from_the_cache(qweather):
    p = provider(qweather)
    first = p.daily("三亚", START, END)
    calls = len(qweather.requests)
    assert p.daily("三亚", START, END) == first
    assert p.daily("三亚", date(2025, 11, 30), date(2025, 12, 1)) == first[1:3]
    # days past the forecast that was fetched do not trigger a new request either
    assert [d.date for d in p.daily("三亚", date(2025, 12, 5), date(2025, 12, 9))] == [
        date(2025, 12, 5)
    ]
    assert len(qweather.requests) == calls


def test_cache_expires_after_the_ttl(qweather):
    clock = FakeClock()
    p = provider(qweather, cache_ttl_s=600, clock=clock)
    p.daily("三亚", START, END)
    clock.now += 601
    p.daily("三亚", START, END)
    # the location id is cached far longer than forecasts: only the forecast is fetched again
    assert qweather.paths() == ["/geo/v2/city/lookup", "/v7/weather/7d", "/v7/weather/7d"]


class FakeRedis:
    def __init__(self):
        self.data, self.ttls = {}, {}

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value, ex=None):
        self.data[key] = value.encode() if isinstance(value, str) else value
        self.ttls[key] = ex


def test_redis_cache_is_shared_between_providers(qweather):
    redis = FakeRedis()
    first = provider(qweather, redis=redis, cache_ttl_s=900).daily("三亚", START, END)
    calls = len(qweather.requests)
    assert provider(qweather, redis=redis).daily("三亚", START, END) == first
    assert len(qweather.requests) == calls
    assert 900 in redis.ttls.values()


@pytest.mark.redis
def test_real_redis_cache(qweather):
    import redis as redis_lib
    from urllib.parse import urlparse

    url = urlparse(REDIS_TEST_URL)
    require_service("Redis", url.hostname, url.port or 6379)
    client = redis_lib.Redis.from_url(REDIS_TEST_URL)
    city = f"三亚-{uuid.uuid4().hex[:6]}"  # a fresh cache namespace for this run
    try:
        first = provider(qweather, redis=client, cache_ttl_s=60).daily(city, START, END)
        calls = len(qweather.requests)
        assert provider(qweather, redis=client).daily(city, START, END) == first
        assert len(qweather.requests) == calls
    finally:
        for key in client.scan_iter(f"weather:qweather:*{city}*"):
            client.delete(key)
        client.close()


def test_geo_base_follows_the_api_host():
    assert geo_base_for("https://devapi.qweather.com") == "https://geoapi.qweather.com/v2"
    assert geo_base_for("api.qweather.com") == "https://geoapi.qweather.com/v2"
    assert geo_base_for("abc123.re.qweatherapi.com") == "https://abc123.re.qweatherapi.com/geo/v2"


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="forecast length"):
        QWeatherProvider(api_host="http://x", key=KEY, days="8d")
    with pytest.raises(ValueError, match="key"):
        QWeatherProvider(api_host="http://x", key="")

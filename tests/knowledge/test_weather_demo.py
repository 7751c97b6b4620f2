"""The demo provider: deterministic, plausible for the city's month, and only 7 days ahead."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.knowledge.weather import (
    DemoWeatherProvider,
    QWeatherProvider,
    WeatherProvider,
    WeatherUnavailable,
    get_weather_provider,
)
from bot.settings import get_settings


def test_same_city_and_date_give_the_same_forecast(kb, today):
    a = DemoWeatherProvider(kb, today=lambda: today).daily("三亚", today, today + timedelta(days=6))
    b = DemoWeatherProvider(kb, today=lambda: today).daily("三亚", today, today + timedelta(days=6))
    assert a == b and len(a) == 7
    # a later clock still gives the same forecast for a day both can see
    later = DemoWeatherProvider(kb, today=lambda: today + timedelta(days=2))
    day = today + timedelta(days=4)
    assert later.daily("三亚", day, day) == [f for f in a if f.date == day]


def test_cities_differ_and_follow_the_climate(kb, today):
    demo = DemoWeatherProvider(kb, today=lambda: today)
    sanya = demo.daily("三亚", today, today + timedelta(days=6))
    shanghai = demo.daily("上海", today, today + timedelta(days=6))
    for city, days in (("三亚", sanya), ("上海", shanghai)):
        for f in days:  # the week crosses into December: each day follows its own month
            norm = kb.climate(city).month(f.date.month)
            assert abs(f.temp_max - norm.high) <= 3 and f.temp_min < f.temp_max
    assert max(f.temp_max for f in shanghai) < min(f.temp_max for f in sanya)
    assert all(f.text_day and f.wind and f.uv_index for f in sanya)


def test_only_days_within_the_horizon(kb, today):
    demo = DemoWeatherProvider(kb, today=lambda: today)
    days = demo.daily("三亚", today - timedelta(days=2), today + timedelta(days=20))
    assert [f.date for f in days] == [today + timedelta(days=i) for i in range(7)]
    assert demo.daily("三亚", today + timedelta(days=10), today + timedelta(days=13)) == []
    assert demo.horizon_days == 7


def test_unknown_city_is_unavailable(kb, today):
    with pytest.raises(WeatherUnavailable) as err:
        DemoWeatherProvider(kb, today=lambda: today).daily("拉萨", today, today)
    assert err.value.code == "unknown_city"


def test_factory_builds_the_configured_provider(kb, monkeypatch):
    provider = get_weather_provider(get_settings(), kb)
    assert isinstance(provider, DemoWeatherProvider) and isinstance(provider, WeatherProvider)

    monkeypatch.setenv("WEATHER_PROVIDER", "qweather")
    monkeypatch.delenv("QWEATHER_KEY", raising=False)
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="QWEATHER_KEY"):
        get_weather_provider(get_settings(), kb)

    monkeypatch.setenv("QWEATHER_KEY", "k")
    monkeypatch.setenv("QWEATHER_FORECAST_DAYS", "15d")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never contacted at construction
    get_settings.cache_clear()
    provider = get_weather_provider(get_settings(), kb)
    # QWEATHER_FORECAST_DAYS is read by bot/settings.py when it has the weather extras;
    # without them the provider falls back to the 7-day forecast.
    expected = 15 if hasattr(get_settings(), "qweather_forecast_days") else 7
    assert isinstance(provider, QWeatherProvider) and provider.horizon_days == expected

    monkeypatch.setenv("WEATHER_PROVIDER", "sunshine")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="sunshine"):
        get_weather_provider(get_settings(), kb)

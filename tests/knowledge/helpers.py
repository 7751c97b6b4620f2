"""Small builders shared by the answer and packing tests."""

from __future__ import annotations

from datetime import date, timedelta

from bot.knowledge.weather import DailyForecast


def forecast(
    day: date,
    tmin: float,
    tmax: float,
    text: str = "晴",
    precip: float = 0.0,
    uv: int = 5,
    wind_scale: int = 3,
) -> DailyForecast:
    return DailyForecast(
        date=day,
        text_day=text,
        text_night=text,
        temp_min=tmin,
        temp_max=tmax,
        precip_mm=precip,
        humidity=70,
        uv_index=uv,
        wind=f"东风{wind_scale - 1}-{wind_scale}级",
        wind_scale_max=wind_scale,
    )


def week(start: date, days: int, **kwargs) -> list[DailyForecast]:
    return [forecast(start + timedelta(days=i), **kwargs) for i in range(days)]


def assert_clean(text: str) -> None:
    """Rendered guest text: no template leftovers, no Python reprs, not empty."""
    assert text.strip()
    for leftover in ("{{", "}}", "{%", "%}", "{#", "None", "Undefined", "[]", "()"):
        assert leftover not in text, f"{leftover!r} left in:\n{text}"


def assert_short(text: str, max_lines: int = 8) -> None:
    """WeCom messages are read on phones: a handful of lines."""
    assert len(text.splitlines()) <= max_lines, text

"""The one clock vocabulary: UTC for storage, China time for what guests and staff see.

China has one time zone (UTC+8) and no daylight saving, so a fixed offset is exact and needs no
tz database.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), name="Asia/Shanghai")


def utcnow() -> dt.datetime:
    """Now, timezone-aware, in UTC (what every table stores)."""
    return dt.datetime.now(dt.timezone.utc)


def china_now() -> dt.datetime:
    """Now in China time."""
    return dt.datetime.now(CHINA_TZ)


def china_today() -> dt.date:
    """Today's date where the guests and hotels are, whatever the server's zone."""
    return dt.datetime.now(CHINA_TZ).date()


def aware(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """Rows read back from SQLite may come naive (they hold UTC): make them comparable."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def china_date(moment: dt.datetime) -> dt.date:
    """The calendar day in China of an aware moment (a naive one is taken as UTC)."""
    stamp = aware(moment)
    assert stamp is not None
    return stamp.astimezone(CHINA_TZ).date()


def china_midnight(day: dt.date) -> dt.datetime:
    """00:00 China time on `day`, as an aware datetime."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ)

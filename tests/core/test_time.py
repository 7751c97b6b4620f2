"""bot.core.time: the one China time zone and UTC clock the project uses."""

from __future__ import annotations

import datetime as dt

from bot.core import time as t


def test_utcnow_is_aware_utc():
    now = t.utcnow()
    assert now.utcoffset() == dt.timedelta(0)


def test_china_date_crosses_midnight_eight_hours_before_utc():
    late_utc = dt.datetime(2026, 3, 1, 16, 30, tzinfo=dt.timezone.utc)  # 00:30 on the 2nd in China
    assert t.china_date(late_utc) == dt.date(2026, 3, 2)
    assert t.china_date(late_utc - dt.timedelta(hours=1)) == dt.date(2026, 3, 1)
    # a naive stamp (as SQLite gives it back) is UTC, not local time
    assert t.china_date(late_utc.replace(tzinfo=None)) == dt.date(2026, 3, 2)


def test_china_midnight_and_now():
    midnight = t.china_midnight(dt.date(2026, 3, 2))
    assert midnight.astimezone(dt.timezone.utc) == dt.datetime(
        2026, 3, 1, 16, tzinfo=dt.timezone.utc
    )
    assert t.china_now().utcoffset() == dt.timedelta(hours=8)


def test_aware_leaves_aware_values_and_none_alone():
    stamp = dt.datetime(2026, 1, 1, 12, tzinfo=t.CHINA_TZ)
    assert t.aware(stamp) is stamp
    assert t.aware(None) is None


def test_every_module_uses_the_one_definition():
    """The three former copies now name the same objects."""
    from bot.crm import models, store
    from bot.knowledge import weather
    from bot.orders import when
    from bot.wecom import db

    assert store.CHINA_TZ is when.CHINA_TZ is t.CHINA_TZ
    assert models.utcnow is db.utcnow is t.utcnow
    assert store.china_today is weather.china_today is t.china_today

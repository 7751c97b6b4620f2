"""Fixtures for marketing: a migrated SQLite CRM with the demo guests, a movable clock, the
policy with knobs, and the WeCom sandbox with marketing built on it."""

from __future__ import annotations

import datetime as dt

import aiohttp
import pytest

from bot.crm.db import make_engine
from bot.crm.demo import load_demo
from bot.crm.store import CHINA_TZ
from bot.marketing.policy import Cap, MarketingPolicy
from bot.settings import get_settings
from tests.wecom.helpers import run_sandbox

# The demo data is loaded relative to this day; tests move the clock around it.
TODAY = dt.date(2026, 12, 1)


def at(day_offset: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    """A moment `day_offset` days after TODAY, China time."""
    local = dt.datetime.combine(
        TODAY + dt.timedelta(days=day_offset), dt.time(hour, minute), tzinfo=CHINA_TZ
    )
    return local.astimezone(dt.timezone.utc)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def demo(engine):
    load_demo(engine, today=TODAY)
    return engine


@pytest.fixture
def clock():
    return Clock(at(0, 10))


def policy(**kw) -> MarketingPolicy:
    """The default policy, with quiet hours and cap as the test says."""
    cap = kw.pop("cap", None)
    values = {
        "coupons": {
            "repurchase": {"code": "BACK", "text": "复购券"},
            "winback": {"code": "MISS", "text": "回归礼"},
        },
        "review_url": "https://example.com/review",
        **kw,
    }
    if cap is not None:
        values["cap"] = cap if isinstance(cap, Cap) else Cap("month", cap)
    return MarketingPolicy(**values)


@pytest.fixture
async def sandbox(monkeypatch):
    async with run_sandbox() as (base, state):
        monkeypatch.setenv("WECOM_API_BASE", base)
        get_settings.cache_clear()
        async with aiohttp.ClientSession() as http:
            yield base, state, http


@pytest.fixture
async def wecom(sandbox, engine):
    """A GroupMsgAPI on the sandbox (WeComServices on the test database)."""
    from bot.marketing.wecom_api import GroupMsgAPI
    from bot.wecom.db import Database
    from bot.wecom.services import WeComServices
    from bot.wecom.api.token import MemoryTokenStore

    async def no_sleep(_s):
        return None

    services = WeComServices(
        db=Database(engine),
        token_store=MemoryTokenStore(),
        timeout_s=3.0,
        sleep=no_sleep,
        redis=None,
    )
    yield GroupMsgAPI(services)
    await services.close()

"""Fixtures for the WeCom channel tests: a migrated SQLite database, the sandbox on a loopback
port as the WeCom API, and the connector served by Sanic with a fake Rasa behind it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, List

import aiohttp
import pytest

from bot.settings import get_settings
from tests.wecom.helpers import FakeRasa, free_port, run_sandbox, run_sanic, sandbox_calls


@pytest.fixture
def database(db_url):
    from bot.wecom.db import Database, get_engine

    return Database(get_engine(db_url))


class SleepRecorder:
    """Replaces asyncio.sleep in the client: back-off waits are recorded, not slept."""

    def __init__(self) -> None:
        self.waits: List[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


@dataclass
class Env:
    sandbox: str
    state: Any
    http: aiohttp.ClientSession
    connector_port: int
    sleeps: SleepRecorder = field(default_factory=SleepRecorder)
    made: list = field(default_factory=list)

    async def calls(self, path=None):
        return await sandbox_calls(self.http, self.sandbox, path)

    def services(self, **kwargs):
        from bot.wecom.services import WeComServices

        from bot.wecom.api.token import MemoryTokenStore

        kwargs.setdefault("sleep", self.sleeps)
        kwargs.setdefault("timeout_s", 2.0)
        kwargs.setdefault("token_store", MemoryTokenStore())  # no token leaks between tests
        services = WeComServices(**kwargs)
        self.made.append(services)
        return services


@pytest.fixture
async def env(monkeypatch, db_url):
    connector_port = free_port()
    async with run_sandbox(
        connector_url=f"http://127.0.0.1:{connector_port}", callback_retries=1, callback_timeout_s=5
    ) as (base, state):
        monkeypatch.setenv("WECOM_API_BASE", base)
        get_settings.cache_clear()
        async with aiohttp.ClientSession() as http:
            env = Env(base, state, http, connector_port)
            yield env
            for services in env.made:
                await services.close()


@dataclass
class Connector:
    env: Env
    channel: Any
    rasa: FakeRasa
    url: str

    async def post(self, path, body):
        from tests.wecom.helpers import post_json

        return await post_json(self.env.http, f"{self.env.sandbox}{path}", body)

    async def idle(self, timeout=10.0):
        await self.channel.wait_idle(timeout)


@pytest.fixture
async def connector(env):
    """The WeCom channel on the sandbox's connector port, with a recording fake Rasa."""
    from bot.wecom.delivery.tasks import DroppedTasks
    from connectors.wecom import WeComInput

    rasa = FakeRasa()
    # DroppedTasks() drops nothing until a test names a kind of work a "dead process" never starts.
    channel = WeComInput({}, services=env.services(), sweep_interval_s=0, tasks=DroppedTasks())
    async with run_sanic(channel, rasa, env.connector_port) as url:
        yield Connector(env, channel, rasa, url)

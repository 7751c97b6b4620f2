"""Per-member 30/min + 1000/h and robot 20/min windows, in memory and in Redis."""

from __future__ import annotations

import uuid

import pytest

from bot.wecom.api.ratelimit import APP_MEMBER_LIMITS, MemoryRateLimiter, RedisRateLimiter
from tests.conftest import REDIS_TEST_URL, require_service


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


async def test_memory_limiter_30_per_minute_then_waits():
    clock = Clock()
    limiter = MemoryRateLimiter(APP_MEMBER_LIMITS, clock=clock)
    for _ in range(30):
        assert await limiter.hit("app:1:lisi") == 0
        clock.now += 0.5
    wait = await limiter.hit("app:1:lisi")
    assert 44 < wait <= 45.5  # the first of the 30 leaves the window 60 s after it was sent
    assert await limiter.hit("app:1:other") == 0  # per member
    clock.now += wait + 0.01
    assert await limiter.hit("app:1:lisi") == 0


async def test_memory_limiter_hourly_cap():
    clock = Clock()
    limiter = MemoryRateLimiter(APP_MEMBER_LIMITS, clock=clock)
    sent = 0
    for _ in range(1100):
        if await limiter.hit("m") == 0:
            sent += 1
        clock.now += 2.0  # 30/min never binds at this pace
    assert sent == 1000


@pytest.mark.redis
async def test_redis_limiter_is_shared():
    require_service("Redis", "127.0.0.1", 6379)
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_TEST_URL)
    prefix = f"test:rl:{uuid.uuid4().hex[:8]}"
    try:
        clock = Clock()
        a = RedisRateLimiter(client, APP_MEMBER_LIMITS, prefix=prefix, clock=clock)
        b = RedisRateLimiter(client, APP_MEMBER_LIMITS, prefix=prefix, clock=clock)
        results = []
        for i in range(31):
            results.append(await (a if i % 2 else b).hit("app:1:lisi"))
        assert results[:30] == [0.0] * 30 and results[30] > 59
        clock.now += 61
        assert await a.hit("app:1:lisi") == 0
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.close()

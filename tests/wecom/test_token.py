"""Access tokens: fetched once, shared (Redis, wechatpy's key scheme), renewed before expiry."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from bot.wecom.api.token import AccessTokenProvider, MemoryTokenStore, RedisTokenStore, token_key
from tests.conftest import REDIS_TEST_URL, require_service


class Fetcher:
    """Stands in for gettoken; the tokens of every Fetcher are numbered in one sequence."""

    issued = 0

    def __init__(self, expires_in=7200, delay=0.01):
        self.calls = 0
        self.expires_in = expires_in
        self.delay = delay

    async def __call__(self):
        self.calls += 1
        await asyncio.sleep(self.delay)
        return f"token-{self.calls}", self.expires_in


class SharedFetcher(Fetcher):
    async def __call__(self):
        self.calls += 1
        SharedFetcher.issued += 1
        await asyncio.sleep(self.delay)
        return f"shared-{SharedFetcher.issued}", self.expires_in


async def test_concurrent_callers_share_one_fetch():
    fetch = Fetcher()
    provider = AccessTokenProvider("corp", "secret-abcdefghijk", fetch, store=MemoryTokenStore())
    tokens = await asyncio.gather(*[provider.get() for _ in range(20)])
    assert set(tokens) == {"token-1"} and fetch.calls == 1


async def test_invalidate_drops_only_the_bad_token():
    fetch = Fetcher()
    store = MemoryTokenStore()
    provider = AccessTokenProvider("corp", "secret", fetch, store=store)
    assert await provider.get() == "token-1"
    await provider.invalidate("some-older-token")  # another process already refreshed
    assert await provider.get() == "token-1"
    await provider.invalidate("token-1")
    assert await provider.get() == "token-2"


async def test_token_is_renewed_before_it_expires():
    from bot.wecom.clock import ManualClock

    clock = ManualClock()
    fetch = Fetcher(expires_in=7200)  # WeCom's lifetime: renewed 300 s before the end
    provider = AccessTokenProvider("corp", "secret", fetch, store=MemoryTokenStore(clock))
    assert await provider.get() == "token-1"
    clock.advance_sync(6899)
    assert await provider.get() == "token-1"
    clock.advance_sync(1)
    assert await provider.get() == "token-2"


def test_key_scheme_is_wechatpys():
    # wechatpy.enterprise.WeChatClient.access_token_key + RedisStorage(prefix="wechatpy")
    from wechatpy.enterprise import WeChatClient
    from wechatpy.session.redisstorage import RedisStorage

    client = WeChatClient("ww_corp", "0123456789abcdef")
    assert token_key("ww_corp", "0123456789abcdef") == RedisStorage(
        object.__new__(_Dummy)
    ).key_name(client.access_token_key)


class _Dummy:
    get = set = delete = None


@pytest.fixture
async def redis_client():
    require_service("Redis", "127.0.0.1", 6379)
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_TEST_URL)
    keys = []
    yield client, keys
    for pattern in keys:
        async for key in client.scan_iter(match=pattern):
            await client.delete(key)
    await client.close()


@pytest.mark.redis
async def test_redis_token_is_shared_by_every_process(redis_client):
    client, keys = redis_client
    corp = f"ww_test_{uuid.uuid4().hex[:8]}"
    keys.append(f"wechatpy:{corp}_*")
    fetch_a, fetch_b = SharedFetcher(), SharedFetcher()
    # two "processes": two providers, two stores, one Redis
    a = AccessTokenProvider(corp, "secret-xyz-123", fetch_a, store=RedisTokenStore(client))
    b = AccessTokenProvider(corp, "secret-xyz-123", fetch_b, store=RedisTokenStore(client))
    first = await asyncio.gather(a.get(), b.get(), a.get(), b.get())
    assert len(set(first)) == 1 and fetch_a.calls + fetch_b.calls == 1

    raw = await client.get(token_key(corp, "secret-xyz-123"))
    assert json.loads(raw) == first[0]  # JSON-encoded, like wechatpy's RedisStorage
    ttl = await client.ttl(token_key(corp, "secret-xyz-123"))
    assert 6800 < ttl <= 6900  # 7200 s minus the refresh margin

    await b.invalidate(first[0])  # b got 40014: a sees the new token too
    new = await a.get()
    assert new != first[0] and await b.get() == new


@pytest.mark.redis
async def test_wechatpy_reads_our_cached_token(redis_client):
    client, keys = redis_client
    corp = f"ww_test_{uuid.uuid4().hex[:8]}"
    keys.append(f"wechatpy:{corp}_*")
    provider = AccessTokenProvider(corp, "secret-xyz-123", Fetcher(), store=RedisTokenStore(client))
    token = await provider.get()

    import redis
    from wechatpy.session.redisstorage import RedisStorage

    sync = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        from wechatpy.enterprise import WeChatClient

        wc = WeChatClient(corp, "secret-xyz-123", session=RedisStorage(sync))
        assert wc.session.get(wc.access_token_key) == token
    finally:
        sync.close()


def test_the_memory_store_serves_tokens_to_several_event_loops():
    """The action server's tag mirror runs asyncio.run() in worker threads on one shared store:
    a lock bound to one loop must not stop (or hang) another."""
    import concurrent.futures

    store = MemoryTokenStore()

    async def fetch_once(n):
        provider = AccessTokenProvider("corp", "secret-loops", Fetcher(), store=store)
        return await provider.get()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(lambda n: asyncio.run(asyncio.wait_for(fetch_once(n), 5)), range(8)))
    assert len(set(tokens)) == 1 and all(t.startswith("token-") for t in tokens)

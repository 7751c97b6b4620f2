"""Access tokens: one per (corp, secret), cached where every process sees it, fetched once.

With REDIS_URL the token lives in Redis under wechatpy's RedisStorage key scheme
(`wechatpy:{corp_id}_{secret[:10]}_access_token`, JSON-encoded), so a wechatpy `WeChatClient`
with `RedisStorage(redis)` shares it. Without Redis it is kept in this process. The stored TTL is
`expires_in - refresh_margin`, so the token is renewed before WeCom expires it; `invalidate()`
drops it after 40001/40014/42001 (only if it is still the bad one, so a fresh token fetched by
another process is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import AsyncIterator, Awaitable, Callable, Dict, Optional, Tuple

from bot.wecom.clock import SYSTEM, Clock

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_MARGIN_S = 300
KEY_PREFIX = "wechatpy"


def token_key(corp_id: str, secret: str) -> str:
    """wechatpy's enterprise key, under RedisStorage's default prefix."""
    return f"{KEY_PREFIX}:{corp_id}_{secret[:10]}_access_token"


class MemoryTokenStore:
    """Process-local store (dict + expiry). Shared by all clients of the process."""

    def __init__(self, clock: Clock = SYSTEM) -> None:
        self.clock = clock
        self._data: Dict[str, Tuple[str, float]] = {}
        self._locks: Dict[Tuple[str, int], asyncio.Lock] = {}

    async def get(self, key: str) -> Optional[str]:
        item = self._data.get(key)
        if not item:
            return None
        value, expires_at = item
        if self.clock.monotonic() >= expires_at:
            self._data.pop(key, None)
            return None
        return value

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._data[key] = (value, self.clock.monotonic() + ttl)

    async def delete_if(self, key: str, value: str) -> None:
        item = self._data.get(key)
        if item and item[0] == value:
            self._data.pop(key, None)

    @contextlib.asynccontextmanager
    async def lock(self, key: str, ttl: float = 15) -> AsyncIterator[None]:
        # One lock per event loop: an asyncio.Lock belongs to one loop, and code that runs
        # asyncio.run() in worker threads (the action server's tag mirror) shares this store.
        loop = asyncio.get_running_loop()
        lock = self._locks.setdefault((key, id(loop)), asyncio.Lock())
        async with lock:
            yield


_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    """Redis store; the value is JSON-encoded like wechatpy's RedisStorage."""

    def __init__(self, redis) -> None:
        self.redis = redis

    async def get(self, key: str) -> Optional[str]:
        raw = await self.redis.get(key)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, str) else None

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self.redis.set(key, json.dumps(value), ex=max(1, int(ttl)))

    async def delete_if(self, key: str, value: str) -> None:
        await self.redis.eval(_DELETE_IF_EQUAL, 1, key, json.dumps(value))

    @contextlib.asynccontextmanager
    async def lock(self, key: str, ttl: float = 15) -> AsyncIterator[None]:
        """Cross-process single flight: wait (bounded) for whoever is fetching right now."""
        lock_key, me = f"{key}:lock", uuid.uuid4().hex
        deadline = time.monotonic() + ttl
        while not await self.redis.set(lock_key, me, nx=True, px=int(ttl * 1000)):
            if time.monotonic() > deadline:
                break  # the holder died: go ahead, the lock expires by itself
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            try:
                await self.redis.eval(_DELETE_IF_EQUAL, 1, lock_key, me)
            except Exception:  # the lock expires on its own
                pass


_memory_store = MemoryTokenStore()


def default_store(redis=None):
    """Redis when given (REDIS_URL), else the process-wide memory store."""
    return RedisTokenStore(redis) if redis is not None else _memory_store


Fetcher = Callable[[], Awaitable[Tuple[str, int]]]


class AccessTokenProvider:
    """Hands out the current token of one app, fetching it at most once at a time."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        fetch: Fetcher,
        store=None,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
    ) -> None:
        self.key = token_key(corp_id, secret)
        self.fetch = fetch
        self.store = store or _memory_store
        self.refresh_margin_s = refresh_margin_s
        self._lock = asyncio.Lock()
        self.fetches = 0  # for tests and metrics

    async def get(self) -> str:
        token = await self.store.get(self.key)
        if token:
            return token
        async with self._lock:
            token = await self.store.get(self.key)
            if token:
                return token
            async with self.store.lock(self.key):
                token = await self.store.get(self.key)
                if token:
                    return token
                token, expires_in = await self.fetch()
                self.fetches += 1
                ttl = max(60.0, float(expires_in) - self.refresh_margin_s)
                if ttl >= float(expires_in):  # very short lifetimes (tests): keep half of it
                    ttl = max(1.0, float(expires_in) / 2)
                await self.store.set(self.key, token, ttl)
                logger.info("fetched a new WeCom access token (%s), cached %.0fs", self.key, ttl)
                return token

    async def invalidate(self, bad_token: str) -> None:
        await self.store.delete_if(self.key, bad_token)

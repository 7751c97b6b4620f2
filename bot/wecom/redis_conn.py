"""One redis.asyncio client per (URL, event loop), created on first use -- never at import time.

redis.asyncio connections belong to the loop that opened them; Sanic workers, the sandbox and tests
each run their own loop, so the cache is keyed by loop as well.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Dict, Optional, Tuple

from bot.settings import get_settings

_clients: Dict[Tuple[str, int], tuple] = {}  # (url, id(loop)) -> (weakref to loop, client)


def redis_url() -> Optional[str]:
    return get_settings().redis_url


def get_redis(url: Optional[str] = None):
    """The shared async client for `url` (default REDIS_URL), or None when Redis is not configured."""
    url = url or redis_url()
    if not url:
        return None
    import redis.asyncio as aioredis  # type: ignore[import-untyped]  # redis 4.x ships no stubs

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    key = (url, id(loop))
    entry = _clients.get(key)
    if entry is None or entry[0]() is not loop:
        client = aioredis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        _clients[key] = (weakref.ref(loop) if loop is not None else (lambda: None), client)
        return client
    return entry[1]


async def close_all() -> None:
    for key, (_, client) in list(_clients.items()):
        try:
            await client.close()
        except Exception:  # closing on a dead loop: nothing more to do
            pass
        _clients.pop(key, None)

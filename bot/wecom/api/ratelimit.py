"""Sliding-window rate limits for outbound sends (WeCom drops what goes over, silently).

WeCom: an app may send one member at most 30 messages a minute and 1,000 an hour (more are
discarded without an error); a group robot 20 a minute. `hit(key)` counts a send and returns 0, or
refuses it (not counted) and returns how many seconds until it would be allowed. With Redis the
windows are shared by every process (sorted sets updated by one Lua script); otherwise per process.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple

Limit = Tuple[int, float]  # (max events, window seconds)

APP_MEMBER_LIMITS: Sequence[Limit] = ((30, 60.0), (1000, 3600.0))
ROBOT_LIMITS: Sequence[Limit] = ((20, 60.0),)


class MemoryRateLimiter:
    def __init__(self, limits: Sequence[Limit], clock=time.time) -> None:
        self.limits = tuple(limits)
        self.clock = clock
        self._events: Dict[str, Deque[float]] = {}

    async def hit(self, key: str) -> float:
        now = self.clock()
        events = self._events.setdefault(key, deque())
        longest = max(w for _, w in self.limits)
        while events and events[0] <= now - longest:
            events.popleft()
        wait = 0.0
        for count, window in self.limits:
            recent = [t for t in events if t > now - window]
            if len(recent) >= count:
                wait = max(wait, recent[-count] + window - now)
        if wait > 0:
            return wait
        events.append(now)
        return 0.0


_LUA = """
local now = tonumber(ARGV[1])
local member = ARGV[2]
local n = (#ARGV - 2) / 2
local wait = 0
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  local key = KEYS[i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
for i = 1, n do
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('PEXPIRE', KEYS[i], math.ceil(window * 1000))
end
return '0'
"""


class RedisRateLimiter:
    def __init__(
        self, redis, limits: Sequence[Limit], prefix: str = "concierge:wecom:rl", clock=time.time
    ):
        self.redis = redis
        self.limits = tuple(limits)
        self.prefix = prefix
        self.clock = clock

    async def hit(self, key: str) -> float:
        keys = [f"{self.prefix}:{key}:{int(w)}" for _, w in self.limits]
        args: List[Any] = [repr(self.clock()), uuid.uuid4().hex]
        for count, window in self.limits:
            args += [count, window]
        result = await self.redis.eval(_LUA, len(keys), *keys, *args)
        return float(result.decode() if isinstance(result, bytes) else result)


def make_limiter(limits: Sequence[Limit], redis=None, prefix: Optional[str] = None):
    if redis is not None:
        return RedisRateLimiter(redis, limits, prefix=prefix or "concierge:wecom:rl")
    return MemoryRateLimiter(limits)

"""The WeCom code's one clock seam: wall time (UTC, for what the database stores and compares),
monotonic time (in-process expiries) and sleeping (back-offs, heartbeats, sweeps). Production
uses `SYSTEM`; tests pass a `ManualClock` and move time on instead of sleeping."""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
import time
from typing import List, Optional, Protocol, Tuple

from bot.core.time import utcnow


class Clock(Protocol):
    def now(self) -> dt.datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM = SystemClock()


class ManualClock:
    """Time that moves only when `advance` (or `advance_sync`) says so. Sleepers wake in order as
    time passes them; `advance` lets each woken sleeper run until it sleeps again or ends (its
    work may be in a thread: e.g. a lease renewal), bounded by `settle_s` of real time."""

    def __init__(self, start: Optional[dt.datetime] = None, settle_s: float = 2.0) -> None:
        self._now = start or dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
        self._mono = 1000.0
        self._sleepers: List[Tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()
        self._slept = asyncio.Event()
        self.settle_s = settle_s

    def now(self) -> dt.datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + max(0.0, seconds), next(self._seq), future))
        self._slept.set()
        await future

    def advance_sync(self, seconds: float) -> None:
        """Move time on without waking anyone (code with no sleepers, e.g. plain functions)."""
        self._move(self._mono + seconds)

    async def advance(self, seconds: float) -> None:
        target = self._mono + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            wake, _, future = heapq.heappop(self._sleepers)
            self._move(wake)
            if future.done():  # its task was cancelled
                continue
            self._slept.clear()
            future.set_result(None)
            try:  # let it run until it sleeps again (or give up: it ended, or does not sleep)
                await asyncio.wait_for(self._slept.wait(), self.settle_s)
            except asyncio.TimeoutError:
                pass
        self._move(target)
        await asyncio.sleep(0)

    def _move(self, mono: float) -> None:
        if mono > self._mono:
            self._now += dt.timedelta(seconds=mono - self._mono)
            self._mono = mono

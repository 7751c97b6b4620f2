"""Background work of a WeCom host, started through one object so tests can inject a fault (a
process that dies right after answering WeCom) instead of patching private attributes."""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, List, Optional, Set


class BackgroundTasks:
    """Starts and tracks a host's background work. `kind` names what a task is ("pull" for a
    微信客服 sync, "turn" for an inbox worker) so a test can drop one kind of work."""

    def __init__(self) -> None:
        self._tasks: Set[asyncio.Future] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], kind: str = "task") -> Optional[asyncio.Future]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def pending(self) -> List[asyncio.Future]:
        return [t for t in self._tasks if not t.done()]

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class DroppedTasks(BackgroundTasks):
    """A process that dies right after the HTTP 200: the work of the given kinds never starts
    (tests of crash recovery). `kinds` may be changed while the host runs."""

    def __init__(self, *kinds: str) -> None:
        super().__init__()
        self.kinds = set(kinds)

    def spawn(self, coro: Coroutine[Any, Any, Any], kind: str = "task") -> Optional[asyncio.Future]:
        if kind in self.kinds:
            coro.close()
            return None
        return super().spawn(coro, kind)

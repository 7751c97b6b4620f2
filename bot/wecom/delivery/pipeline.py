"""Runs the inbox: one worker per sender (so a guest's messages are handled one at a time, in
order), any number of senders in parallel, and a periodic sweep that picks up what a dead process
or a failed attempt left behind.

`handle(item)` returns the final status ("done", "ignored", ...); if it raises, the row goes back
to pending (or `failed` after the inbox's max attempts, when `on_failed` is told, e.g. to apologise
to the guest) and the sweep retries it later.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Awaitable, Callable, Dict, Optional, Set

from bot.ops.logs import correlation, correlation_of
from bot.ops.metrics import TURN_SECONDS
from bot.wecom.clock import SYSTEM, Clock
from bot.wecom.delivery.inbox import Inbox, InboxItem
from bot.wecom.delivery.tasks import BackgroundTasks

logger = logging.getLogger(__name__)

Handler = Callable[[InboxItem], Awaitable[str]]

# A turn that takes longer than this is abandoned (released for a retry): Rasa and the action
# server answer in seconds, and the guest has long given up.
DEFAULT_HANDLE_TIMEOUT_S = 120.0


class Dispatcher:
    def __init__(
        self,
        inbox: Inbox,
        handle: Handler,
        *,
        on_failed: Optional[Callable[[InboxItem, str], Awaitable[None]]] = None,
        timeout_s: Optional[float] = None,
        max_concurrency: int = 32,
        tasks: Optional[BackgroundTasks] = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.inbox = inbox
        self.clock = clock
        self.tasks = tasks or BackgroundTasks()
        self._slots = asyncio.Semaphore(max_concurrency)  # a burst of senders must not swamp Rasa
        self.handle = handle
        self.on_failed = on_failed
        # The lease is renewed while a turn runs (a heartbeat), so the turn may outlive it; a hung
        # handler is stopped by this timeout instead.
        self.timeout_s = timeout_s if timeout_s is not None else DEFAULT_HANDLE_TIMEOUT_S
        self._workers: Dict[str, asyncio.Future] = {}
        self._again: Set[str] = set()
        self._closing = False

    def kick(self, sender_id: str) -> None:
        """New rows for `sender_id` were stored: make sure a worker will get to them."""
        if self._closing:
            return
        task = self._workers.get(sender_id)
        if task is not None and not task.done():
            self._again.add(sender_id)
            return
        task = self.tasks.spawn(self._work(sender_id), "turn")
        if task is None:  # dropped (a test's dead process)
            return
        self._workers[sender_id] = task
        task.add_done_callback(functools.partial(self._done, sender_id))

    def _done(self, sender_id: str, task: asyncio.Future) -> None:
        if self._workers.get(sender_id) is task:
            self._workers.pop(sender_id, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("inbox worker for %s crashed", sender_id, exc_info=task.exception())

    async def _work(self, sender_id: str) -> None:
        await self._work_sender(sender_id)

    async def _work_sender(self, sender_id: str) -> None:
        while not self._closing:
            # A slot per message, not per sender: a guest who writes again while being answered
            # queues behind the guests already waiting. Holding the slot across messages let 32
            # chatty guests keep every slot while the rest waited half a minute
            # (make bench-wecom at 50 guests: p95 21 s, p99 34 s, from the queue alone).
            async with self._slots:
                item = await self.inbox.claim(sender_id)
                if item is None:
                    if sender_id not in self._again:
                        return
                    self._again.discard(sender_id)
                    keep_going = True
                else:
                    with correlation(correlation_of(item.dedupe_key, item.payload)):
                        keep_going = await self._work_item(item)
            if not keep_going:
                return
            # Let a waiter woken by that release take the slot before this worker asks again
            # (asyncio's semaphore lets a running task barge ahead of the queue).
            await asyncio.sleep(0)

    async def _work_item(self, item: InboxItem) -> bool:
        """Handle one claimed row; False when this sender's worker should stop for now."""
        started = time.perf_counter()
        heartbeat = asyncio.ensure_future(self._renew_lease(item.id))
        try:
            status = await asyncio.wait_for(self.handle(item), self.timeout_s)
        except asyncio.CancelledError:
            await asyncio.shield(self.inbox.release(item.id, "cancelled (shutdown)"))
            raise
        except Exception as exc:
            TURN_SECONDS.labels(item.surface, "error").observe(time.perf_counter() - started)
            logger.exception("handling inbox row %s (%s) failed", item.id, item.kind)
            outcome = await self.inbox.release(item.id, f"{type(exc).__name__}: {exc}")
            if outcome == "failed" and self.on_failed is not None:
                try:
                    await self.on_failed(item, str(exc))
                except Exception:
                    logger.exception("on_failed for inbox row %s failed", item.id)
                return True  # the failed row no longer blocks this sender
            return False  # leave it for the sweep: no hot retry loop
        finally:
            heartbeat.cancel()
        elapsed = time.perf_counter() - started
        TURN_SECONDS.labels(item.surface, status or "done").observe(elapsed)
        await self.inbox.finish(item.id, status or "done")
        logger.info(
            "inbox row %s of %s handled (%s) in %.0f ms",
            item.id,
            item.sender_id,
            status or "done",
            elapsed * 1000,
        )
        return True

    async def _renew_lease(self, item_id: int) -> None:
        every = max(0.05, self.inbox.lease_s / 3)
        while True:
            await self.clock.sleep(every)
            try:
                if not await self.inbox.renew(item_id):
                    logger.warning("inbox row %s: lease lost while it was being handled", item_id)
                    return
            except Exception as exc:  # the database is down: the turn goes on, the lease may lapse
                logger.warning("inbox row %s: lease not renewed (%s)", item_id, exc)

    async def drain(self) -> int:
        """Start workers for every sender with unfinished rows (startup and periodic sweep)."""
        senders = await self.inbox.pending_senders()
        for sender_id in senders:
            self.kick(sender_id)
        return len(senders)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no worker runs (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._workers:
            if loop.time() > deadline:
                raise asyncio.TimeoutError(f"workers still running: {list(self._workers)}")
            await asyncio.wait(
                list(self._workers.values()), timeout=max(0.01, deadline - loop.time())
            )

    async def stop(self, grace_s: float = 5.0) -> None:
        self._closing = True
        tasks = [t for t in self._workers.values() if not t.done()]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

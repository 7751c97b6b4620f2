"""What both hosts of WeCom's callbacks share (the Rasa channel and the stand-alone intake server):
the `CallbackIntake`, 微信客服 pulls in the background (a failed one remembered and retried by the
sweep), the catch-up pull at start, the periodic sweep, and the set of background tasks.

The host is told what to do with senders that got new inbox rows (`on_stored`: the Rasa channel
kicks its pipeline, the intake server tells Rasa) and what else its sweep does (`housekeeping`:
the Rasa channel drains the inbox and retries due outbox sends).

Seams for tests: `tasks` starts every background task (inject one that drops them to simulate a
process that died right after answering WeCom), and `clock` (bot.wecom.clock) times the sweep.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Dict, List, Optional

from bot.wecom.clock import SYSTEM, Clock
from bot.wecom.config import WeComConfig
from bot.wecom.delivery.intake import CallbackIntake
from bot.wecom.delivery.tasks import BackgroundTasks

logger = logging.getLogger(__name__)


class DeliveryHost:
    def __init__(
        self,
        config: WeComConfig,
        services,
        *,
        on_stored: Callable[[str], None],
        housekeeping: Optional[Callable[[], Awaitable[None]]] = None,
        sweep_interval_s: float = 10.0,
        tasks: Optional[BackgroundTasks] = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.services = services
        self.on_stored = on_stored
        self.housekeeping = housekeeping
        self.sweep_interval_s = sweep_interval_s
        self.tasks = tasks or BackgroundTasks()
        self.clock = clock
        self.failed_syncs: Dict[str, Optional[str]] = {}
        self._sweeper: Optional[asyncio.Task] = None
        self.intake = CallbackIntake(
            config, services, on_stored=on_stored, on_kf_notice=self.kf_notice
        )

    # ---- 微信客服 pulls ---------------------------------------------------------------------
    def kf_notice(self, open_kfid: str, token: Optional[str]) -> None:
        """A kf_msg_or_event callback (or the catch-up at start): pull in the background."""
        self.tasks.spawn(self.pull(open_kfid, token), "pull")

    async def pull(self, open_kfid: str, token: Optional[str]) -> bool:
        def stored(senders: List[str]) -> None:  # per stored page: work starts at once
            for sender_id in senders:
                self.on_stored(sender_id)

        ok = bool(await self.services.kf.pull(open_kfid, token, on_stored=stored))
        if not ok:
            self.failed_syncs[open_kfid] = token
        return ok

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Catch up on 微信客服 messages that arrived while no process listened; start the sweep."""
        try:
            kfids = await self.services.inbox.known_kfids()
        except Exception:
            logger.exception(
                "WeCom inbox unavailable -- are the migrations applied (concierge db upgrade)?"
            )
            kfids = []
        for open_kfid in kfids:
            self.kf_notice(open_kfid, None)
        if self.sweep_interval_s and self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self.tasks.cancel_all()

    async def sweep(self) -> None:
        """One round of housekeeping, then the 微信客服 pulls that failed."""
        if self.housekeeping is not None:
            await self.housekeeping()
        for open_kfid, token in list(self.failed_syncs.items()):
            self.failed_syncs.pop(open_kfid, None)
            await self.pull(open_kfid, token)

    async def _sweep_forever(self) -> None:
        while True:
            await self.clock.sleep(self.sweep_interval_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("WeCom sweep failed")

    async def wait_background(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.tasks.pending():
            if loop.time() > deadline:
                raise asyncio.TimeoutError("WeCom host still busy")
            await asyncio.wait(self.tasks.pending(), timeout=max(0.01, deadline - loop.time()))

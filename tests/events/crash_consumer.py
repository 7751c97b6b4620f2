"""A consumer that is killed (SIGKILL) right after its first insert committed, before it could
acknowledge the delivery: `python -m tests.events.crash_consumer` (test_consumer.py)."""

from __future__ import annotations

import asyncio
import os
import signal

from bot.crm.db import make_engine
from bot.events.consumer import BrokerSettings, EventConsumer
from bot.events.store import EventStore


class DiesAfterCommit(EventStore):
    def record(self, raw) -> bool:
        stored = super().record(raw)
        os.kill(os.getpid(), signal.SIGKILL)
        return stored


if __name__ == "__main__":
    consumer = EventConsumer(DiesAfterCommit(make_engine()), BrokerSettings.from_env())
    asyncio.run(consumer.run(idle_exit_s=20))

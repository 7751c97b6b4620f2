"""The WeCom layer wired together: config, database tables, Redis (if any), one client per app,
rate limiters, and the kf / aibot / app services. The connector builds one; code outside Rasa
(the paging worker, actions) uses `get_services()`, built from the environment on first use.

Redis clients and aiohttp sessions belong to an event loop, so `get_services()` keeps one
instance per running loop. Nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, Optional, Tuple

from bot.wecom.surfaces.aibot import AibotService
from bot.wecom.surfaces.app import AppService
from bot.wecom.api.client import WeComClient
from bot.wecom.clock import SYSTEM, Clock
from bot.wecom.config import WeComConfig
from bot.wecom.db import Database
from bot.wecom.errors import INVALID_PARAMETER
from bot.wecom.dedupe import make_deduper
from bot.wecom.delivery.inbox import Inbox
from bot.wecom.surfaces.kf import KfService
from bot.wecom.delivery.outbox import Outbox
from bot.wecom.api.ratelimit import APP_MEMBER_LIMITS, ROBOT_LIMITS, make_limiter
from bot.wecom.redis_conn import get_redis
from bot.wecom.api.token import default_store

logger = logging.getLogger(__name__)


class WeComServices:
    def __init__(
        self,
        config: Optional[WeComConfig] = None,
        *,
        db: Optional[Database] = None,
        redis=...,
        token_store=None,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        clock: Clock = SYSTEM,
        sleep=None,
    ) -> None:
        self.config = config or WeComConfig.load()
        self.clock = clock  # the one clock of this WeCom layer (tests pass a ManualClock)
        sleep = sleep or clock.sleep
        self.db = db or Database()
        self.redis = get_redis() if redis is ... else redis
        self.inbox = Inbox(self.db, clock=clock)
        self.outbox = Outbox(self.db, clock=clock)
        store = token_store or default_store(self.redis)  # default: Redis, else shared in-process
        common = dict(
            token_store=store,
            outbox=self.outbox,
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=backoff_s,
            sleep=sleep,
        )
        c = self.config
        self.kf_client = (
            WeComClient("kf", c.corp_id, c.kf_secret, c.api_base, **common) if c.kf_secret else None
        )
        self.app_client = (
            WeComClient("app", c.corp_id, c.app_secret, c.api_base, **common)
            if c.app_secret
            else None
        )
        self.robot_client = WeComClient("robot", c.corp_id, None, c.api_base, **common)
        self.app_limiter = make_limiter(APP_MEMBER_LIMITS, self.redis)
        self.robot_limiter = make_limiter(ROBOT_LIMITS, self.redis)
        self.deduper = make_deduper(self.redis)
        self.kf = KfService(self)
        self.aibot = AibotService(self)
        self.app = AppService(self)

    async def close(self) -> None:
        for client in (self.kf_client, self.app_client, self.robot_client):
            if client is not None:
                await client.close()

    async def retry_due(self, limit: int = 50) -> int:
        """Try the outbox rows whose retry time has come; returns how many were attempted."""
        attempted = 0
        for item in await self.outbox.due(limit):
            if not await self.outbox.claim_retry(item.id):
                continue
            limiter: Any = None
            keys: Tuple[str, ...] = ()
            if item.app == "kf":
                client, auth = self.kf_client, True
            elif item.app == "app":
                client, auth = self.app_client, True
                limiter = self.app_limiter
                keys = self.app.limiter_keys(str(item.body.get("touser") or ""))
            else:
                client, auth = self.robot_client, False
                if item.app == "robot":
                    limiter, keys = self.robot_limiter, (f"robot:{item.path.split('key=', 1)[-1]}",)
            if client is None:
                await self.outbox.mark(item.id, "dead", errmsg=f"no client for {item.app}")
                continue
            errcode_status = None
            if item.status == "sending" and item.app == "kf" and item.body.get("msgid"):
                # Left in flight by a process that died: WeCom may have it already. WeCom accepted
                # this very body as valid before, so "invalid parameter" now means the msgid is
                # taken, i.e. the message was delivered before the crash.
                errcode_status = {INVALID_PARAMETER: "sent"}
            attempted += 1
            await client.attempt(
                item.id,
                item.path,
                item.body,
                auth=auth,
                limiter=limiter,
                limiter_keys=keys,
                retries=1,
                errcode_status=errcode_status,
            )
        return attempted


_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WeComServices]" = (
    weakref.WeakKeyDictionary()
)


def get_services() -> WeComServices:
    """The process' services for the running event loop, built from the environment."""
    loop = asyncio.get_running_loop()
    services = _by_loop.get(loop)
    if services is None:
        services = WeComServices()
        _by_loop[loop] = services
    return services


def set_services(services: Optional[WeComServices]) -> None:
    """Install (or with None, drop) the services of the running loop -- the connector and tests."""
    loop = asyncio.get_running_loop()
    if services is None:
        _by_loop.pop(loop, None)
    else:
        _by_loop[loop] = services

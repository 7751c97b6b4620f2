"""Wiring for real processes (the CLI, the worker, the console): everything built on call.

m = build_marketing(database_url)        # CRM engine, policy, sequences, WeCom, KB, weather
await m.campaigns.send(7)
await m.touchpoints.run(dry_run=True)
await m.close()
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy.engine import Engine

from bot.marketing.campaigns import CampaignService
from bot.marketing.nps import NpsService
from bot.marketing.policy import MarketingPolicy, load_policy
from bot.marketing.segments_service import SegmentService
from bot.marketing.touchpoints import TouchpointMessenger, TouchpointService, load_sequences

log = logging.getLogger(__name__)


@dataclass
class Marketing:
    engine: Engine
    policy: MarketingPolicy
    segments: SegmentService
    campaigns: CampaignService
    touchpoints: TouchpointService
    nps: NpsService
    wecom_services: Any = None

    async def close(self) -> None:
        if self.wecom_services is not None:
            await self.wecom_services.close()


def build_marketing(
    database_url: Optional[str] = None,
    *,
    services=None,
    wecom: bool = True,
    policy: Optional[MarketingPolicy] = None,
    clock=None,
) -> Marketing:
    """`services`: a `WeComServices` to share (the connector's); `wecom=False`: no WeCom client
    (counts, previews, dry runs)."""
    from bot.crm.db import as_engine
    from bot.crm.store import CRMStore
    from bot.knowledge.kb import KnowledgeBase
    from bot.knowledge.weather import get_weather_provider
    from bot.marketing.wecom_api import GroupMsgAPI
    from bot.orders.catalogue import Catalogue
    from bot.pretrip import PreTripService
    from bot.settings import get_settings

    settings = get_settings()
    engine = as_engine(database_url or settings.database_url)
    policy = policy or load_policy()
    api = None
    if wecom:
        if services is None:
            from bot.wecom.db import Database
            from bot.wecom.services import WeComServices

            services = WeComServices(db=Database(engine))
        api = GroupMsgAPI(services)
    kb = KnowledgeBase.load(settings.knowledge_dir)
    pretrip = PreTripService(
        store=CRMStore(engine), kb=kb, weather=get_weather_provider(settings, kb)
    )
    extra = {"clock": clock} if clock else {}
    return Marketing(
        engine=engine,
        policy=policy,
        segments=SegmentService(engine, policy, **extra),
        campaigns=CampaignService(engine, policy, wecom=api, **extra),
        touchpoints=TouchpointService(
            engine,
            policy,
            load_sequences(),
            pretrip=pretrip,
            catalogue=Catalogue.default(),
            messenger=TouchpointMessenger(engine, api) if api else None,
            **extra,
        ),
        nps=NpsService(engine, review_url=policy.review_url),
        wecom_services=services if wecom else None,
    )


async def run_worker(
    m: Marketing,
    *,
    poll_s: float = 30.0,
    once: bool = False,
    worker_id: Optional[str] = None,
    touchpoints_every_s: float = 300.0,
    monotonic=None,
) -> None:
    """Send due campaigns every `poll_s` and fire due touchpoints every `touchpoints_every_s`
    (they read every guest's facts: a few seconds at 100,000 guests) until SIGINT/SIGTERM."""
    import time

    monotonic = monotonic or time.monotonic
    last_touchpoints: Optional[float] = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    while not stop.is_set():
        try:
            for result in await m.campaigns.send_due(worker_id=worker_id):
                log.info("campaign: %s", result)
            now = monotonic()
            if last_touchpoints is None or now - last_touchpoints >= touchpoints_every_s:
                last_touchpoints = now
                report = await m.touchpoints.run()
                if report["sent"] or report["skipped"]:
                    log.info(
                        "touchpoints: %d sent, %d skipped, %d deferred",
                        len(report["sent"]),
                        len(report["skipped"]),
                        len(report["deferred"]),
                    )
        except Exception:  # a database or WeCom outage: log it, try again next round
            log.exception("marketing worker round failed; retrying in %.0fs", poll_s)
        if once:
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_s)
        except asyncio.TimeoutError:
            pass

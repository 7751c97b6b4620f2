"""The process-wide service objects the actions use, built on first use (never at import time).

Actions call `get_services()`; tests build their own objects directly instead of patching this.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from bot.bookings.identity import IdentityLinker
from bot.crm.store import CRMStore
from bot.datafiles import live_catalogue, live_knowledge_base
from bot.flows import Flows, build_flows
from bot.knowledge.kb import KnowledgeBase
from bot.knowledge.weather import get_weather_provider
from bot.pretrip import PreTripService
from bot.settings import Settings, get_settings
from bot.wecom.tag_mirror import mirror_from_env


@dataclass
class Services:
    settings: Settings
    store: CRMStore
    kb: KnowledgeBase
    pretrip: PreTripService
    flows: Flows  # preferences, add-on orders, complaints, handoff, privacy, praise (+ spool)
    identity: IdentityLinker  # a WeCom sender tied to their booking profile


def build_services(settings: Settings) -> Services:
    store = CRMStore(settings.database_url)
    # Edits of the knowledge base and the catalogue take effect without a restart (bot.live).
    kb = live_knowledge_base(settings.knowledge_dir)
    weather = get_weather_provider(settings, kb)
    return Services(
        settings=settings,
        store=store,
        kb=kb,
        pretrip=PreTripService(store=store, kb=kb, weather=weather),
        flows=build_flows(
            store,
            kb=kb,
            catalogue=live_catalogue(),
            redis_url=settings.redis_url,
            mirror=mirror_from_env(settings.wecom_corp_tags_file),
        ),
        identity=IdentityLinker(
            store.engine,
            max_failures=settings.link_max_failures,
            lock_minutes=settings.link_lock_minutes,
        ),
    )


@functools.lru_cache(maxsize=1)
def get_services() -> Services:
    return build_services(get_settings())

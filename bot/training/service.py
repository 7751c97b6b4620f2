"""The training loop as one object, for the `concierge` commands and the staff console.

    loop = build_training_loop(get_settings())
    loop.collect()                                   # tracker store → inbox (the worker does it)
    loop.inbox.items() / .item(id) / .label(id, intent, actor=...) / .discard(id, actor=...)
    loop.train(actor=...)  → version (trains in the background; loop.train(..., wait=True) blocks)
    loop.registry.versions() / .deployments()
    loop.deployer.deploy(version, actor=..., override=None) / .rollback(actor=...)
    loop.close()

Everything here blocks (SQL, subprocesses, HTTP to Rasa): call it from a worker thread
(`asyncio.to_thread`) in an async server. Exceptions carry the message to show the admin:
ItemNotFound, ItemClosed, LabelRefused, VersionNotFound, DeployError (GateRefused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bot.crm.store import CRMStore
from bot.settings import PROJECT_ROOT, Settings
from bot.training.collector import InboxCollector
from bot.training.deploy import Deployer, RasaReplicas
from bot.training.gate import GatePolicy
from bot.training.inbox import DataPaths, InboxService
from bot.training.registry import ModelRegistry
from bot.training.trainer import train_version


@dataclass
class TrainingLoop:
    settings: Settings
    store: CRMStore
    inbox: InboxService
    registry: ModelRegistry
    deployer: Deployer
    collector: InboxCollector

    def collect(self) -> int:
        return self.collector.collect_all()

    def train(self, *, actor: str, wait: bool = False, note: Optional[str] = None) -> dict:
        version = self.registry.new_version(actor, note=note)
        if wait:
            return train_version(self.registry, version)
        self.registry.spawn_training(version)
        return self.registry.get(version)

    def close(self) -> None:
        if self.collector.tracker is not self.store.engine:
            self.collector.tracker.dispose()
        self.store.close()


def build_training_loop(
    settings: Settings, database_url: Optional[str] = None, project_root: Path = PROJECT_ROOT
) -> TrainingLoop:
    t = settings.training
    store = CRMStore(database_url or settings.database_url)
    registry = ModelRegistry(store.engine, store, t.registry_dir, project_root)
    paths = DataPaths(
        nlu_dir=project_root / "data" / "nlu",
        holdout_dir=project_root / "tests" / "nlu_holdout",
        domain=project_root / "domain.yml",
    )
    deployer = Deployer(
        registry=registry,
        replicas=RasaReplicas(t.rasa_urls, settings.rasa_auth_token),
        store=store,
        deployed_path=t.deployed_model_path,
        policy=GatePolicy(t.gate_margin, t.gate_intent_margin),
        evaluate=lambda version: train_version(registry, version),
    )
    if t.inbox_source not in ("events", "tracker"):
        raise ValueError(f"NLU_INBOX_SOURCE must be events or tracker, not {t.inbox_source!r}")
    collector = InboxCollector(
        store.engine,
        None if t.inbox_source == "events" else t.tracker_db_url,
        hash_key=t.hash_key,
        low_confidence=t.low_confidence,
        rephrase_window_s=t.rephrase_window_s,
    )
    return TrainingLoop(
        settings=settings,
        store=store,
        inbox=InboxService(store.engine, store, paths),
        registry=registry,
        deployer=deployer,
        collector=collector,
    )

"""Paging fixtures: a migrated database (SQLite file, or a fresh PostgreSQL database), the stores,
the fast policy, a recording messenger and an injectable clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.crm import crypto
from bot.crm.db import upgrade
from bot.crm.store import CRMStore
from bot.paging.context import GuestContext
from bot.paging.pager import RecordingMessenger
from bot.paging.policy import load_policy
from bot.paging.store import PagingStore
from bot.paging.worker import PagingWorker
from bot.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
FAST_POLICY = ROOT / "tests" / "fixtures" / "sla_policy_fast.yml"
TEST_KEY = Fernet.generate_key().decode()

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


class FakeClock:
    """Time that moves only when told to."""

    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, moment: dt.datetime) -> None:
        self.now = moment

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


@pytest.fixture(autouse=True)
def crm_key(monkeypatch):
    monkeypatch.setenv("CRM_ENCRYPTION_KEY", TEST_KEY)
    monkeypatch.delenv("CONCIERGE_ENV", raising=False)
    get_settings.cache_clear()
    crypto.reset_for_tests()
    yield
    crypto.reset_for_tests()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'paging.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'paging.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def policy():
    return load_policy(FAST_POLICY)


@pytest.fixture
def stores(db_url):
    upgrade(db_url)
    crm = CRMStore(db_url)
    paging = PagingStore(db_url)
    yield crm, paging
    paging.close()
    crm.close()


@pytest.fixture
def crm(stores):
    return stores[0]


@pytest.fixture
def paging(stores):
    return stores[1]


@pytest.fixture
def messenger():
    return RecordingMessenger()


@pytest.fixture
def clock():
    return FakeClock(dt.datetime.now(dt.timezone.utc))


@pytest.fixture
def make_worker(paging, policy, messenger, clock, crm):
    def make(worker_id: str = "w1", **kwargs) -> PagingWorker:
        return PagingWorker(
            paging,
            policy,
            messenger,
            context=GuestContext(crm),
            clock=clock,
            worker_id=worker_id,
            **kwargs,
        )

    return make


def new_guest(crm: CRMStore, sender_id: str = "kf:wm-lin", name: str = "林晓", tier: str = "金卡"):
    crm.get_or_create_guest(sender_id, name=name)
    crm.update_guest(sender_id, tier=tier)
    crm.upsert_tag(sender_id, "trip_purpose", "蜜月")
    crm.upsert_tag(sender_id, "allergy", "海鲜过敏")
    return sender_id


def complaint(crm: CRMStore, sender_id: str, sla_class: str = "complaint_routine", **kwargs):
    return crm.create_ticket(
        sender_id,
        kind="complaint",
        category="卫生",
        description="房间有很重的烟味",
        sla_class=sla_class,
        severity="major" if sla_class == "complaint_major" else "routine",
        **kwargs,
    )

"""The staff console on real stores (SQLite per test) and the real paging service; Rasa is a
small fake (pause/resume and the conversation), the messenger records what would be sent.
Browser tests (test_browser.py) build the same console on the WeCom sandbox instead."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.fernet import Fernet

from bot.console.app import make_app
from bot.console.auth import Auth
from bot.console.deps import ConsoleDeps, load_canned_replies
from bot.console.staff import StaffDirectory
from bot.crm import crypto
from bot.crm.db import upgrade
from bot.crm.store import CRMStore
from bot.paging.handoff import HandoffController
from bot.paging.pager import RecordingMessenger
from bot.paging.policy import load_policy
from bot.paging.service import PagingService
from bot.paging.store import PagingStore
from bot.paging.worker import PagingWorker
from bot.settings import PROJECT_ROOT, get_settings
from tests.paging.conftest import FakeClock

POLICY = PROJECT_ROOT / "tests" / "fixtures" / "console_policy.yml"
EXTRA_STAFF = {
    "marketer_sun": ("孙市场", frozenset({"marketer"})),
    "admin_qian": ("钱管理员", frozenset({"admin"})),
}
SECRET = "console-test-secret-0123456789abcdef"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


class FakeRasa:
    """What the console and paging ask of Rasa: pause/resume and the conversation."""

    def __init__(self):
        self.paused: set = set()
        self.turns: dict = {}
        self.down = False

    def add(self, sender: str, who: str, text: str) -> None:
        self.turns.setdefault(sender, []).append({"who": who, "text": text, "time": None})

    async def pause(self, sender):
        self.paused.add(sender)

    async def resume(self, sender):
        self.paused.discard(sender)

    async def conversation(self, sender, limit=80):
        if self.down:
            from bot.paging.handoff import RasaUnavailable

            raise RasaUnavailable("Rasa at test unreachable")
        return list(self.turns.get(sender, []))[-limit:]

    async def last_user_messages(self, sender, count=3):
        return [t["text"] for t in self.turns.get(sender, []) if t["who"] == "guest"][-count:]


class Epoch:
    """Wall-clock seconds for sessions and links, moved by the test."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Console:
    deps: ConsoleDeps
    crm: CRMStore
    store: PagingStore
    worker: PagingWorker
    messenger: RecordingMessenger
    rasa: FakeRasa
    clock: FakeClock
    epoch: Epoch
    cases: dict = field(default_factory=dict)

    def complaint(
        self,
        sender: str,
        name: str,
        text: str,
        *,
        property_id: str | None = None,
        tier: str = "金卡",
    ) -> int:
        """A guest's complaint as the flow opens it; returns the ticket id (the worker clocks
        and pages it)."""
        self.crm.get_or_create_guest(sender, name=name)
        self.crm.update_guest(sender, tier=tier)
        if property_id:
            today = self.clock().date()
            self.crm.add_booking(
                sender,
                property_id=property_id,
                check_in=today,
                check_out=today + dt.timedelta(days=3),
            )
        ticket = self.crm.create_ticket(
            sender,
            kind="complaint",
            category="卫生",
            description=text,
            sla_class="complaint_routine",
        )
        self.rasa.add(sender, "guest", text)
        return ticket.id

    async def page(self, ticket_id: int) -> int:
        """Run the worker; the case number of the ticket."""
        await self.worker.tick()
        return self.store.clock_for("ticket", ticket_id).id


def build_console(
    db_url: str,
    *,
    messenger=None,
    rasa=None,
    handoff=None,
    wecom_app_client=None,
    base_url: str | None = None,
    clock=None,
    epoch=None,
) -> Console:
    upgrade(db_url)
    policy = load_policy(POLICY)
    crm, store = CRMStore(db_url), PagingStore(db_url)
    clock = clock or FakeClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    epoch = epoch or Epoch(clock().timestamp())
    messenger = messenger if messenger is not None else RecordingMessenger()
    rasa = rasa if rasa is not None else FakeRasa()
    paging = PagingService(
        store,
        policy,
        messenger,
        crm=crm,
        clock=clock,
        handoff=handoff or HandoffController(rasa, crm=crm),
    )
    settings = get_settings()
    if base_url:
        settings = dataclasses.replace(settings, console_base_url=base_url)
    deps = ConsoleDeps(
        settings=settings,
        auth=Auth(SECRET, session_ttl_s=3600, link_ttl_s=600, clock=epoch),
        staff=StaffDirectory(policy, EXTRA_STAFF),
        paging=paging,
        crm=crm,
        rasa=getattr(paging.handoff, "rasa", rasa) if handoff else rasa,
        wecom_app_client=wecom_app_client or (lambda: None),
        canned=load_canned_replies(PROJECT_ROOT / "data" / "canned_replies.yml"),
        now=clock,
        epoch=epoch,
    )
    worker = PagingWorker(store, policy, messenger, clock=clock, worker_id="test")
    return Console(deps, crm, store, worker, messenger, rasa, clock, epoch)


@pytest.fixture(autouse=True)
def crm_key(monkeypatch):
    monkeypatch.setenv("CRM_ENCRYPTION_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv("CONCIERGE_ENV", raising=False)
    get_settings.cache_clear()
    crypto.reset_for_tests()
    yield
    crypto.reset_for_tests()


@pytest.fixture
def console(tmp_path) -> Console:
    return build_console(f"sqlite:///{tmp_path / 'console.db'}")


@pytest.fixture
async def client(console):
    server = TestServer(make_app(console.deps))
    async with TestClient(server) as c:
        yield c


async def sign_in(client: TestClient, console: Console, userid: str) -> str:
    """Sign in with a login link; returns the CSRF token of the new session."""
    token = console.deps.auth.login_token(userid)
    resp = await client.post("/login/link", data={"token": token}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await client.get("/", allow_redirects=True)
    match = CSRF_RE.search(await page.text())
    assert match, "no CSRF token on the page after signing in"
    return match.group(1)


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match
    return match.group(1)


FIXTURES = Path(__file__).parent


# ---- the marketing and training services (/marketing, /admin) -----------------------------------


class FakeReplica:
    """A Rasa replica's /status and PUT /model, as the deployer drives them (runs in a thread)."""

    def __init__(self):
        self.fingerprints: dict = {}  # archive path -> fingerprint
        self.loaded = None

    def app(self):
        from aiohttp import web

        async def status(request):
            return web.json_response({"model_id": self.fingerprints.get(self.loaded)})

        async def model(request):
            self.loaded = str(Path((await request.json())["model_file"]).resolve())
            return web.Response(status=204)

        app = web.Application()
        app.router.add_get("/status", status)
        app.router.add_put("/model", model)
        return app


def add_inbox_item(engine, text: str, predicted: str = "nlu_fallback") -> int:
    from sqlalchemy.orm import Session

    from bot.training import models as tm
    from bot.training.text import group_key

    now = dt.datetime.now(dt.timezone.utc)
    with Session(engine, future=True) as s, s.begin():
        item = tm.InboxItem(
            group_key=group_key(text), text=text, status="open", first_seen=now, last_seen=now
        )
        s.add(item)
        s.flush()
        s.add(
            tm.InboxMessage(
                item_id=item.id,
                source="rasa",
                event_id=item.id,
                sender_hash="h",
                text=text,
                reasons=["fallback"],
                intent=predicted,
                confidence=0.2,
                ranking=[],
                context="[]",
                said_at=now,
            )
        )
        return item.id


def attach_areas(console: Console, tmp_path: Path, replica_url: str, replica: FakeReplica):
    """Marketing (no WeCom: previews and counts) and the training loop on a copy of the NLU data,
    a registry in tmp_path and one fake Rasa replica; two ready versions, v1 deployed."""
    import shutil

    from bot.crm.demo import load_demo
    from bot.marketing.runtime import build_marketing
    from bot.training.deploy import Deployer, RasaReplicas
    from bot.training.gate import GatePolicy
    from bot.training.inbox import DataPaths, InboxService
    from bot.training.registry import ModelRegistry
    from bot.training.service import TrainingLoop

    engine = console.crm.engine
    load_demo(engine, today=console.clock().date())
    shutil.copytree(PROJECT_ROOT / "data" / "nlu", tmp_path / "data" / "nlu")
    shutil.copytree(PROJECT_ROOT / "tests" / "nlu_holdout", tmp_path / "tests" / "nlu_holdout")
    shutil.copyfile(PROJECT_ROOT / "domain.yml", tmp_path / "domain.yml")
    paths = DataPaths(
        nlu_dir=tmp_path / "data" / "nlu",
        holdout_dir=tmp_path / "tests" / "nlu_holdout",
        domain=tmp_path / "domain.yml",
    )
    registry = ModelRegistry(engine, console.crm, tmp_path / "registry", tmp_path)
    deployer = Deployer(
        registry=registry,
        replicas=RasaReplicas((replica_url,), None),
        store=console.crm,
        deployed_path=tmp_path / "deployed.tar.gz",
        policy=GatePolicy(0.0, 0.0),
    )
    figures = {
        "simplified": {
            "n": 100,
            "accuracy": 0.9,
            "macro_f1": 0.88,
            "complain_recall": 0.9,
            "oos_recall": 0.8,
            "false_fallback_rate": 0.02,
            "entity_f1": 0.8,
            "per_intent_recall": {},
        }
    }
    versions = []
    for n, f1 in ((1, 0.88), (2, 0.90)):
        version = registry.new_version("cli:setup", note=f"v{n}")
        archive = tmp_path / "registry" / f"{version}.tar.gz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.write_bytes(f"model {n}".encode())
        fig = {"simplified": {**figures["simplified"], "macro_f1": f1}}
        registry.update(
            version, status="ready", path=str(archive), fingerprint=f"fp{n}", figures=fig
        )
        replica.fingerprints[str(archive.resolve())] = f"fp{n}"
        versions.append(version)
    registry.record_deployment(versions[0], None, "baseline", "cli:setup", {replica_url: "ok"})
    replica.loaded = str((tmp_path / "registry" / f"{versions[0]}.tar.gz").resolve())
    training = TrainingLoop(
        settings=console.deps.settings,
        store=console.crm,
        inbox=InboxService(engine, console.crm, paths),
        registry=registry,
        deployer=deployer,
        collector=None,
    )
    console.deps.extras = {
        "marketing": build_marketing(str(engine.url), wecom=False, clock=console.clock),
        "training": training,
    }
    return versions, paths

"""The whole loop against a real `rasa run`: a message the bot does not understand, sent over
the REST channel, reaches the inbox; it is labelled, a version is trained and evaluated, deployed
without a restart (GET /status reports the new fingerprint, the message is now understood, a
conversation keeps its slots across the switch), and rolled back to the previous fingerprint.

Heavy (a full training, two evaluations, a Rasa server): about 4-6 minutes on 2 cores."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from bot.settings import PROJECT_ROOT
from bot.training.collector import InboxCollector
from bot.training.deploy import Deployer, GateRefused, RasaReplicas
from bot.training.inbox import DataPaths, InboxService
from bot.training.registry import ModelRegistry, model_fingerprint
from bot.training.trainer import train_version
from tests.conftest import IN_CI
from tests.e2e.conftest import free_port, wait_http
from tests.training.conftest import HASH_KEY

MODEL = PROJECT_ROOT / "models" / "concierge.tar.gz"
TOKEN = "training-e2e-token"
UNKNOWN = "熨斗"  # a bare noun the shipped model falls back on; labelled ask_amenity below
LABEL = "ask_amenity"


@pytest.fixture(scope="module")
def rasa(tmp_path_factory):
    if not MODEL.exists():
        if IN_CI:
            pytest.fail(f"no trained model at {MODEL}")
        pytest.skip(f"no trained model at {MODEL}: run `make train`")
    work = tmp_path_factory.mktemp("training-e2e")
    for rel in ("config.yml", "domain.yml"):
        shutil.copyfile(PROJECT_ROOT / rel, work / rel)
    for rel in ("data/nlu", "data/rules", "data/stories", "data/jieba", "tests/nlu_holdout"):
        shutil.copytree(PROJECT_ROOT / rel, work / rel)
    (work / "models").mkdir()
    deployed = work / "models" / "concierge.tar.gz"
    shutil.copyfile(MODEL, deployed)
    port = free_port()
    endpoints = work / "endpoints.yml"
    endpoints.write_text(
        f'tracker_store:\n  type: SQL\n  dialect: "sqlite"\n'
        f'  db: "{work / "tracker.db"}"\nlock_store:\n  type: in_memory\n',
        encoding="utf-8",
    )
    log = work / "rasa.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.rasa_main",
            "run",
            "-m",
            str(deployed),
            "--enable-api",
            "--auth-token",
            TOKEN,
            "--port",
            str(port),
            "--endpoints",
            str(endpoints),
        ],
        cwd=PROJECT_ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**__import__("os").environ, "RASA_TELEMETRY_ENABLED": "false"},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc, log)
        yield {
            "url": f"http://127.0.0.1:{port}",
            "work": work,
            "deployed": deployed,
            "tracker": f"sqlite:///{work / 'tracker.db'}",
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def call(url: str, path: str, body=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    sep = "&" if "?" in path else "?"
    req = urllib.request.Request(
        f"{url}{path}{sep}token={TOKEN}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def say(url: str, sender: str, text: str):
    return call(url, "/webhooks/rest/webhook", {"sender": sender, "message": text})


def slots(url: str, sender: str) -> dict:
    return call(url, f"/conversations/{sender}/tracker")["slots"]


def test_label_train_deploy_and_roll_back_on_a_running_rasa(rasa, crm):
    url, work = rasa["url"], rasa["work"]
    baseline = call(url, "/status")["model_id"]
    assert baseline == model_fingerprint(rasa["deployed"])

    # 1. the guest's message is not understood; the collector files it
    say(url, "rest:guest-iron", UNKNOWN)
    assert call(url, "/model/parse", {"text": UNKNOWN})["intent"]["name"] == "nlu_fallback"
    collector = InboxCollector(crm.engine, rasa["tracker"], hash_key=HASH_KEY)
    collector.collect_all()
    inbox = InboxService(
        crm.engine,
        crm,
        DataPaths(
            nlu_dir=work / "data/nlu",
            holdout_dir=work / "tests/nlu_holdout",
            domain=work / "domain.yml",
        ),
    )
    item = next(i for i in inbox.items() if i["text"] == UNKNOWN)
    assert "fallback" in item["reasons"]

    # a conversation in flight: its slot is set before the switch
    say(url, "rest:guest-trip", "我下周去三亚玩")
    assert slots(url, "rest:guest-trip")["destination"] == "三亚"

    # 2. label, train, deploy
    started = time.monotonic()
    inbox.label(item["id"], LABEL, actor="admin:e2e")
    registry = ModelRegistry(crm.engine, crm, work / "models" / "registry", work)
    version = registry.new_version("admin:e2e")
    row = train_version(registry, version)
    assert row["status"] == "ready", row["error"]
    assert row["figures"]["simplified"]["macro_f1"] > 0.5
    deployer = Deployer(
        registry=registry,
        replicas=RasaReplicas((url,), TOKEN),
        store=crm,
        deployed_path=rasa["deployed"],
        evaluate=lambda v: train_version(registry, v),
    )
    try:
        result = deployer.deploy(version, actor="admin:e2e")
    except GateRefused as refused:  # one added example may move a figure: then it is overridden
        assert refused.reasons
        result = deployer.deploy(version, actor="admin:e2e", override="e2e: one added example")
    print(
        f"label → deployed in {time.monotonic() - started:.0f} s "
        f"(train {row['train_seconds']} s, evaluate {row['eval_seconds']} s)"
    )

    status = call(url, "/status")
    assert status["model_id"] == row["fingerprint"] != baseline
    assert result["replicas"] == {url: "ok"}
    assert call(url, "/model/parse", {"text": UNKNOWN})["intent"]["name"] == LABEL
    assert slots(url, "rest:guest-trip")["destination"] == "三亚"
    say(url, "rest:guest-trip", "那边天气怎么样")
    assert slots(url, "rest:guest-trip")["destination"] == "三亚"
    # a restarted replica would load the deployed version
    assert model_fingerprint(rasa["deployed"]) == row["fingerprint"]

    # 3. roll back
    back = deployer.rollback(actor="admin:e2e")
    assert call(url, "/status")["model_id"] == baseline == back["fingerprint"]
    assert call(url, "/model/parse", {"text": UNKNOWN})["intent"]["name"] == "nlu_fallback"
    assert slots(url, "rest:guest-trip")["destination"] == "三亚"
    actions = [a.action for a in crm.audit_entries(subject_type="model_version")]
    assert "model.deploy" in actions and "model.rollback" in actions
    assert [d["action"] for d in registry.deployments()] == ["rollback", "deploy", "baseline"]

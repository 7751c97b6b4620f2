"""The real stack for end-to-end tests, each process on a free port, started once per test session
(Rasa takes ~20 s): the WeCom sandbox, the intake server (WeCom's callback URLs), the trained model
served by `rasa run` (REST + WeCom + paging channels), the action server, the paging worker (on
the fast SLA policy), and a demo CRM of their own. The REST tests talk to Rasa directly; the WeCom
tests type into the sandbox as a guest would, and read the sandbox's API call log."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT
from tests.conftest import IN_CI

MODEL = PROJECT_ROOT / "models" / "concierge.tar.gz"
FAST_POLICY = PROJECT_ROOT / "tests" / "fixtures" / "sla_policy_fast.yml"
RASA = str(Path(sys.executable).with_name("rasa"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} not up after {timeout} s:\n{log.read_text()[-3000:]}")


@dataclass
class Stack:
    rasa_url: str
    actions_url: str
    database_url: str
    endpoints: Path
    env: dict
    sandbox_url: str = ""
    work: Path | None = None  # where each process writes its log (<name>.log)
    token: str = "e2e-token"

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.work / f"{name}.log" if self.work else None
        return path.read_text(errors="replace")[-chars:] if path and path.exists() else ""

    def sandbox(self, path: str, body: dict | None = None) -> dict:
        """GET (body None) or POST JSON to the sandbox; the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.sandbox_url}{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def say(self, sender: str, text: str) -> list[dict]:
        body = json.dumps({"sender": sender, "message": text}).encode()
        req = urllib.request.Request(
            f"{self.rasa_url}/webhooks/rest/webhook",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())


@pytest.fixture(scope="session")
def rasa_stack(tmp_path_factory):
    if not MODEL.exists():
        message = f"no trained model at {MODEL}: run `make train` (make test does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("stack")
    db_url = f"sqlite:///{work / 'concierge.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "RASA_TELEMETRY_ENABLED": "false",
        "WEATHER_PROVIDER": "demo",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "load"],
        env=env,
        check=True,
        cwd=PROJECT_ROOT,
        capture_output=True,
    )

    actions_port, rasa_port, sandbox_port, intake_port = (free_port() for _ in range(4))
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env.update(
        {
            "WECOM_API_BASE": sandbox_url,  # every WeCom call goes to the sandbox
            "SANDBOX_CONNECTOR_URL": f"http://127.0.0.1:{intake_port}",  # callbacks: intake server
            "WECOM_INTAKE_NOTIFY_URL": f"http://127.0.0.1:{rasa_port}/webhooks/wecom/inbox",
            "RASA_URL": f"http://127.0.0.1:{rasa_port}",
            "RASA_AUTH_TOKEN": "e2e-token",
            "SLA_POLICY_FILE": str(FAST_POLICY),
            "CONCIERGE_SPOOL_FILE": str(work / "spool.jsonl"),
        }
    )
    endpoints = work / "endpoints.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n'
        f'tracker_store:\n  type: SQL\n  dialect: "sqlite"\n  db: "{work / "tracker.db"}"\n'
        "lock_store:\n  type: in_memory\n",
        encoding="utf-8",
    )
    procs = []
    try:
        for name, args, health in (
            (
                "sandbox",
                [sys.executable, "-m", "bot.sandbox", "--port", str(sandbox_port)],
                f"{sandbox_url}/_sandbox/info",
            ),
            (
                "intake",
                [sys.executable, "-m", "bot.wecom.intake_server", "--port", str(intake_port)],
                f"http://127.0.0.1:{intake_port}/webhooks/wecom",
            ),
            (
                "actions",
                [RASA, "run", "actions", "--actions", "actions", "--port", str(actions_port)],
                f"http://127.0.0.1:{actions_port}/health",
            ),
            (
                "rasa",
                [
                    sys.executable,
                    "-m",
                    "bot.rasa_main",
                    "run",
                    "-m",
                    str(MODEL),
                    "--enable-api",
                    "--auth-token",
                    "e2e-token",
                    "--port",
                    str(rasa_port),
                    "--endpoints",
                    str(endpoints),
                    "--credentials",
                    str(PROJECT_ROOT / "credentials.yml"),
                ],
                f"http://127.0.0.1:{rasa_port}/",
            ),
            ("worker", [sys.executable, "-m", "bot.cli", "worker", "--poll", "0.2"], None),
        ):
            log = work / f"{name}.log"
            proc = subprocess.Popen(
                args, cwd=PROJECT_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
            )
            procs.append(proc)
            if health:
                wait_http(health, proc, log)
        yield Stack(
            rasa_url=f"http://127.0.0.1:{rasa_port}",
            actions_url=f"http://127.0.0.1:{actions_port}",
            database_url=db_url,
            endpoints=endpoints,
            env=env,
            sandbox_url=sandbox_url,
            work=work,
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

"""Attacks on the production process set, started as docs/DEPLOY.md says: the Procfile.production
lines (ports moved to free ones), a complete production configuration, PostgreSQL for the CRM
and the tracker store, Redis. Every attack must be refused with a 4xx, a closed port or a refusal
to start: never a 500, never an answer in a guest's name.

Run alone: `pytest -s tests/security/test_production_set.py` prints the table of attacks."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from bot.settings import PROJECT_ROOT
from tests.conftest import IN_CI, REDIS_TEST_URL, require_service
from tests.events.helpers import delete_queue
from tests.security.conftest import production_env

pytestmark = [pytest.mark.rasa_model, pytest.mark.postgres]

MODEL = PROJECT_ROOT / "models" / "concierge.tar.gz"
RESULTS: list[tuple[str, str]] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outside_ip() -> str | None:
    """An address of this machine that is not loopback (what a neighbour would connect to)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """(status, text); connection refused -> (None, reason)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, ConnectionError, socket.timeout) as exc:
        return None, str(getattr(exc, "reason", exc))


def post_oversized(url: str, size: int) -> int | None:
    """POST `size` bytes the way an attacker would (keep sending even once refused); the status
    the server answered, or None if it answered nothing."""
    parts = urllib.parse.urlsplit(url)
    head = (
        f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head.encode())
        chunk = b"A" * 65536
        sent = 0
        try:
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server stopped reading: what did it say?
            pass
        try:
            answer = sock.recv(4096).decode("latin-1")
        except OSError:
            return None
    status = answer.split(" ", 2)
    return int(status[1]) if len(status) > 1 and status[1].isdigit() else None


def record(attack: str, outcome: str) -> None:
    RESULTS.append((attack, outcome))


def procfile_commands(ports: dict) -> dict:
    """Procfile.production's lines, with the ports swapped for free ones."""
    commands = {}
    for line in (PROJECT_ROOT / "Procfile.production").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, command = line.partition(":")
        for default, port in ports.items():
            command = command.replace(f"--port {default}", f"--port {port}")
        command = command.replace(".venv/bin/python", sys.executable)
        command = command.replace(".venv/bin/concierge", f"{sys.executable} -m bot.cli")
        command = command.replace("models/concierge.tar.gz", str(MODEL))
        commands[name.strip()] = command.strip()
    return commands


def two_hotel_policy(path: Path, env: dict) -> None:
    data = yaml.safe_load(Path(env["SLA_POLICY_FILE"]).read_text(encoding="utf-8"))
    data["properties"]["sanya-haitang-resort"] = {
        "roster": [{"userid": "advisor_chen", "name": "陈顾问"}],
        "supervisors": [{"userid": "supervisor_sun", "name": "孙主管"}],
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


@pytest.fixture(scope="module")
def prod(tmp_path_factory, request):
    if not MODEL.exists():
        (pytest.fail if IN_CI else pytest.skip)(f"no trained model at {MODEL}")
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    require_service("RabbitMQ", "127.0.0.1", 5672)  # Rasa's event broker
    work = tmp_path_factory.mktemp("prod")
    # A fresh database for this module (the function-scoped pg_database_url cannot serve it).
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.conftest import PG_URL

    server = make_url(PG_URL)
    name = f"test_prod_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = server.set(database=name).render_as_string(hide_password=False)

    ports = {5005: free_port(), 5055: free_port(), 5006: free_port()}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WECOM_", "SANDBOX_", "CRM_", "PAGING_"))
    }
    env.update(production_env(work))
    policy = work / "two_hotels.yml"
    two_hotel_policy(policy, env)
    env.update(
        {
            "DATABASE_URL": db_url,
            "TRACKER_DATABASE_URL": db_url,
            "REDIS_URL": REDIS_TEST_URL,
            "LOCK_REDIS_HOST": "127.0.0.1",
            "LOCK_REDIS_PORT": "6379",
            "LOCK_REDIS_DB": "15",
            "EVENT_BROKER_HOST": "127.0.0.1",
            "EVENT_BROKER_PORT": "5672",
            "EVENT_BROKER_USERNAME": "guest",
            "EVENT_BROKER_PASSWORD": "guest",
            "EVENT_BROKER_QUEUE": name,
            "EVENT_BROKER_EXCHANGE": name,  # its own, deleted after
            "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{ports[5055]}/webhook",
            "WECOM_INTAKE_NOTIFY_URL": f"http://127.0.0.1:{ports[5005]}/webhooks/wecom/inbox",
            "SLA_POLICY_FILE": str(policy),
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "MAX_REQUEST_BYTES": str(1024 * 1024),
        }
    )
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"],
        env=env,
        check=True,
        cwd=PROJECT_ROOT,
        capture_output=True,
    )
    commands = procfile_commands(ports)
    assert {"rasa", "actions", "intake", "worker", "console"} <= set(commands), commands
    assert "sandbox" not in commands and "bot.sandbox" not in " ".join(commands.values())
    procs = {}
    try:
        for proc_name in ("actions", "rasa", "intake"):
            log = (work / f"{proc_name}.log").open("w")
            procs[proc_name] = subprocess.Popen(
                ["bash", "-c", "exec " + commands[proc_name]],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for proc_name, url in (
            ("actions", f"http://127.0.0.1:{ports[5055]}/health"),
            ("rasa", f"http://127.0.0.1:{ports[5005]}/"),
            ("intake", f"http://127.0.0.1:{ports[5006]}/webhooks/wecom/"),
        ):
            deadline = time.monotonic() + 240
            while http("GET", url)[0] != 200:
                if procs[proc_name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{proc_name} did not start:\n"
                        + (work / f"{proc_name}.log").read_text()[-3000:]
                    )
                time.sleep(0.5)
        yield {
            "env": env,
            "ports": ports,
            "db_url": db_url,
            "work": work,
            "rasa": f"http://127.0.0.1:{ports[5005]}",
            "actions": f"http://127.0.0.1:{ports[5055]}",
            "intake": f"http://127.0.0.1:{ports[5006]}",
        }
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        delete_queue(name)
        print("\n\nAttacks on the production process set:")
        for attack, outcome in RESULTS:
            print(f"  - {attack}: {outcome}")


def test_no_rest_channel_and_no_api_without_the_token(prod):
    status, _ = http(
        "POST",
        f"{prod['rasa']}/webhooks/rest/webhook",
        json.dumps({"sender": "kf:wm_victim", "message": "我的行程"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 404
    record(
        "REST impersonation via loopback (POST /webhooks/rest/webhook as kf:wm_victim)",
        f"HTTP {status}: no rest channel",
    )
    for token in ("", "dev-only-token"):
        status, _ = http(
            "GET",
            f"{prod['rasa']}/conversations/kf:wm_victim/tracker"
            f"{'?token=' + token if token else ''}",
        )
        assert status == 401
        record(
            f"Rasa API tracker read {'with dev-only-token' if token else 'without a token'}",
            f"HTTP {status}",
        )
    status, _ = http(
        "POST",
        f"{prod['rasa']}/conversations/kf:wm_victim/trigger_intent",
        json.dumps({"name": "unsubscribe"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 401
    record("Rasa API trigger_intent unsubscribe as a guest, no token", f"HTTP {status}")


def test_rasa_and_actions_unreachable_from_outside_loopback(prod):
    ip = outside_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback address to attack from")
    for name, port, path, body in (
        (
            "rasa REST",
            prod["ports"][5005],
            "/webhooks/rest/webhook",
            {"sender": "kf:wm_victim", "message": "我的订单"},
        ),
        (
            "action server made-up tracker",
            prod["ports"][5055],
            "/webhook",
            {
                "next_action": "action_order_status",
                "sender_id": "kf:wm_victim",
                "tracker": {
                    "sender_id": "kf:wm_victim",
                    "slots": {},
                    "events": [],
                    "latest_message": {"text": "我的订单", "intent": {}},
                },
                "domain": {},
            },
        ),
    ):
        status, reason = http(
            "POST",
            f"http://{ip}:{port}{path}",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        assert status is None, (name, status)
        record(f"{name} from {ip} (not loopback)", f"connection refused ({reason})")


def test_no_sandbox_in_production(prod):
    for base in (prod["intake"], prod["rasa"]):
        status, _ = http(
            "POST",
            f"{base}/_sandbox/guest/kf",
            json.dumps({"external_userid": "wm_victim", "text": "hi"}).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 404
        record(f"POST /_sandbox/guest/kf on {base.rsplit(':', 1)[1]}", f"HTTP {status}")
    done = subprocess.run(
        [sys.executable, "-m", "bot.sandbox", "--port", str(free_port())],
        env=prod["env"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "refusing to start" in done.stderr
    record(
        "starting the WeCom sandbox with the production configuration",
        f"refused to start (exit {done.returncode})",
    )


def test_oversized_and_non_ascii_callbacks(prod):
    for base in (prod["intake"], prod["rasa"]):
        status = post_oversized(
            f"{base}/webhooks/wecom/kf?msg_signature=x&timestamp=1&nonce=1", 10 * 1024 * 1024
        )
        assert status == 413
        record(f"10 MB callback to {base.rsplit(':', 1)[1]}/webhooks/wecom/kf", f"HTTP {status}")
    sig = urllib.parse.quote("签名不是十六进制")
    for method, body in (("GET", None), ("POST", b"<xml><Encrypt>abc</Encrypt></xml>")):
        query = f"msg_signature={sig}&timestamp={int(time.time())}&nonce=n"
        if method == "GET":
            query += "&echostr=abc"
        status, _ = http(
            method,
            f"{prod['intake']}/webhooks/wecom/kf?{query}",
            body,
            {"Content-Type": "text/xml"},
        )
        assert status is not None and 400 <= status < 500, status
        record(f"{method} callback with a non-ASCII msg_signature", f"HTTP {status}")


def test_inbox_route_needs_the_intake_token(prod):
    for headers in ({}, {"X-Concierge-Inbox-Token": "guess"}):
        status, _ = http(
            "POST",
            f"{prod['rasa']}/webhooks/wecom/inbox",
            json.dumps({"senders": ["kf:wm_victim"]}).encode(),
            {"Content-Type": "application/json", **headers},
        )
        assert status == 403
        record(
            f"POST /webhooks/wecom/inbox {'with a wrong token' if headers else 'no token'}",
            f"HTTP {status}",
        )


def _sanya_case(prod, monkeypatch) -> int:
    from bot.crm import crypto
    from bot.crm.store import CRMStore, china_today
    from bot.paging.store import PagingStore
    from bot.settings import get_settings

    for name in ("CRM_ENCRYPTION_KEY", "CRM_INDEX_KEY"):
        monkeypatch.setenv(name, prod["env"][name])
    get_settings.cache_clear()
    crypto.reset_for_tests()
    store = CRMStore(prod["db_url"])
    sender = f"kf:wm_{uuid.uuid4().hex[:8]}"
    try:
        store.get_or_create_guest(sender, name="三亚客人")
        today = china_today()
        booking = store.add_booking(
            sender,
            property_id="sanya-haitang-resort",
            check_in=today,
            check_out=today + dt.timedelta(days=2),
        )
        ticket = store.create_ticket(
            sender,
            kind="complaint",
            description="房间太吵",
            sla_class="complaint_routine",
            booking_id=booking.id,
        )
    finally:
        store.close()
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "worker", "--once"],
        env=prod["env"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=120,
    )
    paging = PagingStore(prod["db_url"])
    try:
        return paging.clock_for("ticket", ticket.id).id
    finally:
        paging.close()


def test_case_links(prod, monkeypatch):
    from bot.paging.links import CaseLinks

    case = _sanya_case(prod, monkeypatch)
    links = CaseLinks(prod["env"]["PAGING_LINK_SECRET"], 3600)
    url = f"{prod['rasa']}/webhooks/paging/cases/{case}?sig="
    good = links.sign(case, "advisor_chen")
    attacks = [
        ("forged case link (random signature)", "1999999999.YWR2aXNvcl9jaGVu." + "0" * 32),
        ("expired case link", links.sign(case, "advisor_chen", now=time.time() - 7200)),
        ("another advisor's link (advisor_li, other property)", links.sign(case, "advisor_li")),
        ("advisor_chen's link to another case", links.sign(case + 1000, "advisor_chen")),
        (
            "link signed with the old fallback secret dev-only",
            CaseLinks("dev-only", 3600).sign(case, "advisor_chen"),
        ),
        ("non-ASCII case-link signature", urllib.parse.quote("签名") + good),
    ]
    for attack, sig in attacks:
        status, _ = http("GET", url + sig)
        assert status in (403, 404), (attack, status)
        record(attack, f"HTTP {status}")
    status, body = http("GET", url + good)
    assert status == 200 and "三亚客人" in body
    record("control: advisor_chen's own valid link", f"HTTP {status} (served, audited)")


def _wecom_crypto(env, surface):
    from bot.wecom.crypto import CallbackCrypto

    receive = "" if surface == "aibot" else env["WECOM_CORP_ID"]
    return CallbackCrypto(
        env[f"WECOM_{surface.upper()}_TOKEN"], env[f"WECOM_{surface.upper()}_AES_KEY"], receive
    )


def _wait_inbox_done(db_url, dedupe_like: str, timeout=90) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url, future=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT status FROM wecom_inbox WHERE dedupe_key LIKE :k"),
                    {"k": dedupe_like},
                ).first()
            if row and row[0] not in ("pending", "processing"):
                return row[0]
            time.sleep(0.5)
    finally:
        engine.dispose()
    return "timeout"


def test_advisor_cannot_act_on_another_propertys_case(prod, monkeypatch):
    from sqlalchemy import create_engine, text

    case = _sanya_case(prod, monkeypatch)
    env = prod["env"]
    msgid = str(int(time.time() * 1000))
    xml = (
        f"<xml><ToUserName><![CDATA[{env['WECOM_CORP_ID']}]]></ToUserName>"
        f"<FromUserName><![CDATA[advisor_li]]></FromUserName><CreateTime>{int(time.time())}"
        f"</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[接单 {case}]]>"
        f"</Content><MsgId>{msgid}</MsgId><AgentID>{env['WECOM_APP_AGENT_ID']}</AgentID></xml>"
    )
    body, params = _wecom_crypto(env, "app").encrypt_xml(
        xml, to_user=env["WECOM_CORP_ID"], agent_id=env["WECOM_APP_AGENT_ID"]
    )
    status, _ = http(
        "POST",
        f"{prod['intake']}/webhooks/wecom/app?{urllib.parse.urlencode(params)}",
        body.encode(),
        {"Content-Type": "text/xml"},
    )
    assert status == 200
    assert _wait_inbox_done(prod["db_url"], f"%{msgid}%") == "done"
    engine = create_engine(prod["db_url"], future=True)
    try:
        with engine.connect() as conn:
            acked = conn.execute(
                text("SELECT acknowledged_at, assignee_userid FROM sla_clocks " "WHERE id = :id"),
                {"id": case},
            ).one()
            audits = conn.execute(
                text(
                    "SELECT count(*) FROM audit_log WHERE action = "
                    "'sla.acknowledge' AND actor = 'advisor:advisor_li'"
                )
            ).scalar()
    finally:
        engine.dispose()
    assert tuple(acked) == (None, None) and audits == 0
    record(
        f"advisor_li (default property) sends 接单 {case} for a sanya case",
        "callback 200, command refused: case not acknowledged, nothing audited as done",
    )


def test_foreign_response_url_gets_no_reply(prod):
    from sqlalchemy import create_engine, text

    env = prod["env"]
    msgid = f"aib{uuid.uuid4().hex[:12]}"
    msg = {
        "msgid": msgid,
        "aibotid": "aib_x",
        "chattype": "single",
        "from": {"userid": "zhangsan"},
        "msgtype": "text",
        "text": {"content": "你好"},
        "response_url": "https://evil.example.com/cgi-bin/aibot/response?response_code=x",
    }
    body, params = _wecom_crypto(env, "aibot").encrypt_json(msg)
    status, _ = http(
        "POST",
        f"{prod['intake']}/webhooks/wecom/aibot?" f"{urllib.parse.urlencode(params)}",
        body.encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    assert _wait_inbox_done(prod["db_url"], f"%{msgid}%") == "done"
    engine = create_engine(prod["db_url"], future=True)
    try:
        deadline = time.monotonic() + 30
        rows = []
        while time.monotonic() < deadline and not rows:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT path, status FROM wecom_outbox WHERE app = "
                        "'aibot' AND recipient = 'wecom:zhangsan'"
                    )
                ).all()
            time.sleep(0.5)
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("(foreign response_url)", "dead")]
    record(
        "智能机器人 callback with response_url on evil.example.com",
        "callback 200; the reply was never sent (outbox: dead, foreign response_url)",
    )


@pytest.mark.parametrize(
    "change,words",
    [
        ({"RASA_AUTH_TOKEN": "dev-only-token"}, "RASA_AUTH_TOKEN"),
        ({"PAGING_LINK_SECRET": ""}, "PAGING_LINK_SECRET"),
        ({"CRM_ENCRYPTION_KEY": ""}, "CRM_ENCRYPTION_KEY"),
        ({"WECOM_API_BASE": "http://127.0.0.1:8800"}, "WECOM_API_BASE"),
        ({"CONCIERGE_ENV": ""}, "CONCIERGE_ENV"),
    ],
)
def test_each_process_refuses_weak_configuration(prod, change, words):
    env = {**prod["env"], **change}
    commands = procfile_commands({5005: free_port(), 5055: free_port(), 5006: free_port()})
    for name in ("rasa", "actions", "intake", "worker", "marketing", "console"):
        done = subprocess.run(
            ["bash", "-c", "exec " + commands[name]],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0 and words in done.stderr, (name, done.stderr[-2000:])
    record(f"starting the production set with {change}", "every process refused to start")


@pytest.mark.parametrize(
    "swap,words",
    [
        (("credentials.production.yml", "credentials.yml"), "`rest`"),
        (("-i 127.0.0.1", "-i 0.0.0.0"), "loopback"),
    ],
)
def test_rasa_refuses_the_rest_channel_or_a_public_interface(prod, swap, words):
    command = procfile_commands({5005: free_port(), 5055: 0, 5006: 0})["rasa"]
    done = subprocess.run(
        ["bash", "-c", "exec " + command.replace(*swap)],
        env=prod["env"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and words in done.stderr
    record(f"starting Rasa with {swap[1]}", "refused to start")

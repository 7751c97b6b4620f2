"""Start a whole stack for a benchmark, the way tests/e2e/conftest.py does: the action server and
`rasa run` (REST + the WeCom channel) on free ports, with a generated endpoints/credentials file
and a demo CRM of its own under a temp dir; optionally the WeCom sandbox, and PostgreSQL + Redis
instead of the embedded SQLite defaults. Also: peak memory of each process (with children).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from bot.settings import PROJECT_ROOT

BENCH_BACKFILL_GRACE_S = 10

log = logging.getLogger("bench")

BIN = Path(sys.executable).parent
RASA = str(BIN / "rasa")
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BASE_URL = os.environ.get("BENCH_PG_BASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
AUTH_TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, logfile: Path, timeout: float = 300) -> float:
    """Wait until `url` answers; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{proc.args[:3]} exited early (code {proc.returncode}):\n"
                f"{logfile.read_text(errors='replace')[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.monotonic() - start
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(
        f"{url} not up after {timeout} s:\n{logfile.read_text(errors='replace')[-3000:]}"
    )


# ---- memory ------------------------------------------------------------------------------------


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> List[int]:
    out: List[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    out += [int(c) for c in fh.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree so far (from /proc/<pid>/stat)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, ValueError, IndexError):
            pass
    return total


def process_tree(pid: int) -> List[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += _children(p)
    return tree


class MemoryWatch:
    """Samples the resident memory of each watched process tree (psutil is not installed with
    rasa: /proc). Peak = the largest sampled sum of VmRSS over the tree; the kernel's own
    high-water mark (VmHWM) of the main process is kept too, it cannot miss a short peak."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.pids: Dict[str, int] = {}
        self.peak_kb: Dict[str, int] = {}
        self.hwm_kb: Dict[str, int] = {}
        self.children_seen: Dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memwatch", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        if not self._thread.is_alive():
            self._thread.start()

    def sample(self) -> None:
        for name, pid in list(self.pids.items()):
            tree = process_tree(pid)
            total = sum(_status_kb(p, "VmRSS") for p in tree)
            if total:
                self.peak_kb[name] = max(self.peak_kb.get(name, 0), total)
            hwm = _status_kb(pid, "VmHWM")
            if hwm:
                self.hwm_kb[name] = max(self.hwm_kb.get(name, 0), hwm)
            self.children_seen[name] = max(self.children_seen.get(name, 0), len(tree) - 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop.set()

    def report_mb(self) -> Dict[str, Dict[str, float]]:
        return {
            name: {
                "peak_rss_mb": round(
                    max(self.peak_kb.get(name, 0), self.hwm_kb.get(name, 0)) / 1024, 1
                ),
                "vmhwm_main_mb": round(self.hwm_kb.get(name, 0) / 1024, 1),
                "children": self.children_seen.get(name, 0),
            }
            for name in self.pids
        }


# ---- bench guests in the CRM -------------------------------------------------------------------

# Templates copied from data/demo/demo.yml: a 三亚 honeymoon in 6 days and a 上海 business trip
# in 2 days (one upcoming stay each, so the answers do not stop to ask which stay).
GUEST_TEMPLATES = [
    {
        "name": "林晓",
        "tier": "金卡",
        "booking": {
            "property_id": "sanya-haitang-resort",
            "city": "三亚",
            "check_in": 6,
            "check_out": 10,
            "room_type": "海景大床房",
            "purpose": "蜜月",
            "party_size": 2,
        },
    },
    {
        "name": "陈志远",
        "tier": "铂金",
        "booking": {
            "property_id": "shanghai-bund-hotel",
            "city": "上海",
            "check_in": 2,
            "check_out": 4,
            "room_type": "行政大床房",
            "purpose": "商务",
            "party_size": 1,
        },
    },
]


def bench_guests_yaml(sender_ids: List[str], path: Path) -> Path:
    guests = []
    for n, sender in enumerate(sender_ids):
        t = GUEST_TEMPLATES[n % len(GUEST_TEMPLATES)]
        booking = dict(t["booking"], confirmation_no=f"BENCH-{n:05d}")
        guests.append(
            {
                "sender_id": sender,
                "name": t["name"],
                "tier": t["tier"],
                "phone": f"1380{n:07d}",
                "bookings": [booking],
                "consents": [{"purpose": "marketing", "granted": True, "source": "demo"}],
            }
        )
    path.write_text(yaml.safe_dump({"guests": guests}, allow_unicode=True), encoding="utf-8")
    return path


# ---- PostgreSQL / Redis --------------------------------------------------------------------------


def create_pg_database() -> str:
    import psycopg2

    name = f"bench_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return name


def drop_pg_database(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


def clear_redis_keys(patterns: List[str]) -> int:
    """Delete the keys a run left in the bench Redis db (its own lock prefix, the cached sandbox
    access token): never FLUSHDB, other people's keys stay."""
    try:
        import redis
    except ImportError:
        return 0
    client = redis.Redis.from_url(REDIS_URL)
    removed = 0
    try:
        for pattern in patterns:
            keys = list(client.scan_iter(match=pattern, count=500))
            if keys:
                removed += client.delete(*keys)
    finally:
        client.close()
    return removed


def delete_rabbit_queue(name: str) -> None:
    """The stack's events queue, its dead-letter queue and its exchange (named alike)."""
    import asyncio

    import aio_pika

    async def go():
        connection = await aio_pika.connect(
            host="127.0.0.1", port=5672, login="guest", password="guest"
        )
        try:
            channel = await connection.channel()
            for queue in (name, f"{name}.dead"):
                await channel.queue_delete(queue)
            await channel.exchange_delete(name)
        finally:
            await connection.close()

    asyncio.run(go())


# ---- the stack -----------------------------------------------------------------------------------


@dataclass
class Stack:
    name: str
    model: Path
    workdir: Path
    wecom: bool = True
    intake: bool = (
        False  # WeCom callbacks to the stand-alone intake server instead of Rasa's routes
    )
    nice: Dict[str, int] = field(
        default_factory=dict
    )  # process name -> niceness, as the Procfile sets
    pg: bool = False
    sanic_workers: int = 1
    start_timeout_s: float = 600.0
    rasa_patches: List[str] = field(default_factory=list)  # bench.rasa_patched experiments
    product_entry: bool = False  # ours: started like the Procfile does (python -m bot.rasa_main)
    tracker_store: str = "sql"  # "memory": Rasa's InMemoryTrackerStore (an experiment: not durable)
    env_extra: Dict[str, str] = field(default_factory=dict)
    # Replicas (issue 18): this many Rasa servers ("rasa", "rasa2", ...) and action servers
    # ("actions", "actions2", ...); Rasa replica i calls action server i mod M. With pg, they
    # share the PostgreSQL tracker store and the Redis lock store.
    rasa_replicas: int = 1
    action_replicas: int = 1
    intake_replicas: int = 1  # intake servers; the sandbox delivers to them in turn
    # Rasa's pika event broker on the machine's RabbitMQ (a queue and exchange of the stack's
    # own), and `concierge events consume` ("events") storing them in the CRM.
    events: bool = False
    worker: bool = False  # `concierge worker` ("worker": SLA pages, outbox sweeps)
    procs: Dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: Dict[str, int] = field(default_factory=dict)
    startup_s: Dict[str, float] = field(default_factory=dict)
    memory: MemoryWatch = field(default_factory=MemoryWatch)
    pg_db: Optional[str] = None
    lock_prefix: str = ""
    env: Dict[str, str] = field(default_factory=dict)
    _plan: Dict[str, tuple] = field(default_factory=dict)

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['rasa']}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sandbox']}"

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def rasa_names(self) -> List[str]:
        return ["rasa"] + [f"rasa{i}" for i in range(2, self.rasa_replicas + 1)]

    @property
    def action_names(self) -> List[str]:
        return ["actions"] + [f"actions{i}" for i in range(2, self.action_replicas + 1)]

    @property
    def intake_names(self) -> List[str]:
        return ["intake"] + [f"intake{i}" for i in range(2, self.intake_replicas + 1)]

    def url_of(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def events_queue(self) -> str:
        return f"bench_events_{self.lock_prefix or self.name}"

    def start(self, sender_ids: List[str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in (*self.action_names, *self.rasa_names)}
        if self.wecom:
            self.ports["sandbox"] = free_port()
        if self.wecom and self.intake:
            self.ports.update({name: free_port() for name in self.intake_names})
        env = {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",
            "WEATHER_PROVIDER": "demo",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "SLA_POLICY_FILE": str(PROJECT_ROOT / "data" / "sla_policy.yml"),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("REDIS_URL", None)
        tracker = f'tracker_store:\n  type: SQL\n  dialect: "sqlite"\n  db: "{self.workdir / "tracker.db"}"\n'
        lock = "lock_store:\n  type: in_memory\n"
        if self.pg:
            self.pg_db = create_pg_database()
            env["DATABASE_URL"] = f"{PG_BASE_URL}/{self.pg_db}"
            env["REDIS_URL"] = REDIS_URL
            # Rasa's tracker store is in the same database (the consumer's backfill reads it)
            env["TRACKER_DATABASE_URL"] = env["DATABASE_URL"]
            tracker = (
                'tracker_store:\n  type: SQL\n  dialect: "postgresql"\n  url: "127.0.0.1"\n'
                f'  port: 5432\n  db: "{self.pg_db}"\n  username: "postgres"\n'
            )
            redis_db = REDIS_URL.rsplit("/", 1)[-1]
            self.lock_prefix = f"bench{uuid.uuid4().hex[:8]}"
            lock = (
                f'lock_store:\n  type: redis\n  url: "127.0.0.1"\n  port: 6379\n  db: {redis_db}\n'
                f'  key_prefix: "{self.lock_prefix}"\n'
            )
        else:
            env["DATABASE_URL"] = f"sqlite:///{self.workdir / 'concierge.db'}"
        if self.tracker_store == "memory":
            tracker = ""  # no tracker_store section: Rasa keeps conversations in the process
        if self.wecom:
            env["WECOM_API_BASE"] = self.sandbox_url
            env["SANDBOX_CONNECTOR_URL"] = f"http://127.0.0.1:{self.ports['rasa']}"
            if self.intake:
                env["SANDBOX_CONNECTOR_URL"] = ",".join(self.url_of(n) for n in self.intake_names)
                env["WECOM_INTAKE_NOTIFY_URL"] = ",".join(
                    f"{self.url_of(name)}/webhooks/wecom/inbox" for name in self.rasa_names
                )
            env["SANDBOX_LOG_LEVEL"] = "WARNING"
        if self.sanic_workers > 1:
            env["SANIC_WORKERS"] = str(self.sanic_workers)
        env.update(self.env_extra)
        self.env = env
        if self.pg:
            self._clear_token_cache()

        # The CRM: migrate, then the bench guests (demo-marked, like the e2e stack's demo load).
        guests_file = bench_guests_yaml(sender_ids, self.workdir / "bench_guests.yml")
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "demo", "load", "--file", str(guests_file)],
            env=env,
            check=True,
            cwd=PROJECT_ROOT,
            capture_output=True,
        )
        self.startup_s["crm_load"] = round(time.monotonic() - started, 2)

        broker = ""
        if self.events:
            self.lock_prefix = self.lock_prefix or f"bench{uuid.uuid4().hex[:8]}"
            env.update(
                {
                    "EVENT_BROKER_HOST": "127.0.0.1",
                    "EVENT_BROKER_PORT": "5672",
                    "EVENT_BROKER_USERNAME": "guest",
                    "EVENT_BROKER_PASSWORD": "guest",
                    "EVENT_BROKER_QUEUE": self.events_queue,
                    "EVENT_BROKER_EXCHANGE": self.events_queue,
                    "EVENTS_METRICS_PORT": "0",
                    # a short grace, so a run's drain can wait for the backfill (60 s in
                    # production)
                    "EVENTS_BACKFILL_GRACE_S": str(BENCH_BACKFILL_GRACE_S),
                    "EVENTS_BACKFILL_INTERVAL_S": "2",
                }
            )
            broker = (
                'event_broker:\n  type: pika\n  url: "127.0.0.1"\n  port: 5672\n'
                '  username: "guest"\n  password: "guest"\n'
                f'  exchange_name: "{self.events_queue}"\n  queues:\n    - "{self.events_queue}"\n'
            )
        if self.worker:
            env["WORKER_METRICS_PORT"] = "0"
        # the worker's page context and the console's deploys reach the Rasa replicas here
        env["RASA_URL"] = self.url_of(self.rasa_names[0])
        env["RASA_URLS"] = ",".join(self.url_of(n) for n in self.rasa_names)
        endpoint_files = {}
        for i, name in enumerate(self.rasa_names):
            actions = self.action_names[i % len(self.action_names)]
            endpoint_files[name] = self.workdir / f"endpoints-{name}.yml"
            endpoint_files[name].write_text(
                f'action_endpoint:\n  url: "http://127.0.0.1:{self.ports[actions]}/webhook"\n'
                + tracker
                + lock
                + broker,
                encoding="utf-8",
            )
        credentials = self.workdir / "credentials.yml"
        credentials.write_text(
            "rest:\n" + ("connectors.wecom.WeComInput:\n" if self.wecom else ""), encoding="utf-8"
        )
        plan = []
        if self.wecom:
            plan.append(
                (
                    "sandbox",
                    [sys.executable, "-m", "bot.sandbox", "--port", str(self.ports["sandbox"])],
                    f"{self.sandbox_url}/_sandbox/info",
                )
            )
        if self.wecom and self.intake:
            for name in self.intake_names:
                plan.append(
                    (
                        name,
                        [
                            sys.executable,
                            "-m",
                            "bot.wecom.intake_server",
                            "--port",
                            str(self.ports[name]),
                        ],
                        f"{self.url_of(name)}/webhooks/wecom/",
                    )
                )
        actions_cmd = (
            [sys.executable, "-m", "bench.rasa_patched", "--patch=sqlite", "--", "run"]
            if "sqlite" in self.rasa_patches
            else [RASA, "run"]
        )
        for name in self.action_names:
            plan.append(
                (
                    name,
                    [
                        *actions_cmd,
                        "actions",
                        "--actions",
                        "actions",
                        "--port",
                        str(self.ports[name]),
                    ],
                    f"{self.url_of(name)}/health",
                )
            )
        if self.events:
            plan.append(("events", [sys.executable, "-m", "bot.cli", "events", "consume"], None))
        if self.worker:
            plan.append(("worker", [sys.executable, "-m", "bot.cli", "worker"], None))
        rasa_cmd = (
            [
                sys.executable,
                "-m",
                "bench.rasa_patched",
                *[f"--patch={p}" for p in self.rasa_patches],
                "--",
                "run",
            ]
            if self.rasa_patches
            else [sys.executable, "-m", "bot.rasa_main", "run"]
            if self.product_entry
            else [RASA, "run"]
        )
        for name in self.rasa_names:
            plan.append(
                (
                    name,
                    [
                        *rasa_cmd,
                        "-m",
                        str(self.model),
                        "--enable-api",
                        "--auth-token",
                        AUTH_TOKEN,
                        "--port",
                        str(self.ports[name]),
                        "--endpoints",
                        str(endpoint_files[name]),
                        "--credentials",
                        str(credentials),
                    ],
                    f"{self.url_of(name)}/",
                )
            )
        self._plan = {name: (args, health) for name, args, health in plan}
        for name, _, _ in plan:
            self._launch(name, wait=not name.startswith("rasa"))
        for name in self.rasa_names:  # the replicas load their models side by side
            self._wait(name)

    def _launch(self, name: str, mode: str = "w", wait: bool = True) -> None:
        args, health = self._plan[name]
        logfile = self.workdir / f"{name}.log"
        niceness = self.nice.get(name, 0)
        proc = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=logfile.open(mode),
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
        )
        self.procs[name] = proc
        self._started = getattr(self, "_started", {})
        self._started[name] = time.monotonic()
        self.memory.watch(name, proc.pid)
        if wait:
            self._wait(name)

    def _wait(self, name: str) -> None:
        _, health = self._plan[name]
        proc = self.procs[name]
        if health is None:  # no HTTP port (the event consumer, the worker): running is up
            time.sleep(0.5)
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.log_tail(name)}")
            self.startup_s[name] = round(time.monotonic() - self._started[name], 2)
        else:
            wait_http(health, proc, self.workdir / f"{name}.log", timeout=self.start_timeout_s)
            self.startup_s[name] = round(time.monotonic() - self._started[name], 2)
        log.info("%s: %s up in %.1f s (pid %d)", self.name, name, self.startup_s[name], proc.pid)

    def kill(self, name: str) -> None:
        """SIGKILL, as when the machine or the OOM killer takes the process: no shutdown hooks."""
        proc = self.procs[name]
        proc.kill()
        proc.wait(timeout=10)
        log.info("%s: %s killed (pid %d)", self.name, name, proc.pid)

    def restart(self, name: str) -> float:
        """Start a killed process again with the same command; returns the seconds until it answered."""
        self._launch(name, mode="a")
        return self.startup_s[name]

    def cpu(self) -> Dict[str, float]:
        return {
            name: cpu_seconds(proc.pid) for name, proc in self.procs.items() if proc.poll() is None
        }

    def log_tail(self, name: str, chars: int = 2000) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self) -> Dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.procs.items()}

    def _clear_token_cache(self) -> None:
        from bot.wecom.dev_defaults import CORP_ID

        # The sandbox access tokens cached by a previous run (wechatpy's RedisStorage key scheme):
        # a new sandbox would answer 40014 to them.
        patterns = [f"wechatpy:{CORP_ID}_*", "concierge:wecom:kfstate:*:bench-*"]
        if self.lock_prefix:
            patterns.append(f"{self.lock_prefix}*")
        try:
            clear_redis_keys(patterns)
        except Exception as exc:  # Redis down: the run will say so itself
            log.warning("could not clear bench keys in Redis: %s", exc)

    def stop(self) -> None:
        self.memory.stop()
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self.events:
            try:
                delete_rabbit_queue(self.events_queue)
            except Exception as exc:
                log.warning("could not delete the bench queue %s: %s", self.events_queue, exc)
        if self.pg:
            self._clear_token_cache()
            if self.pg_db:
                try:
                    drop_pg_database(self.pg_db)
                except Exception as exc:
                    log.warning("could not drop the bench database %s: %s", self.pg_db, exc)


def temp_workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_workdir(path: Path, keep: bool) -> None:
    if not keep:
        shutil.rmtree(path, ignore_errors=True)

"""The 1,000-ticket SLA simulation (issue 5's closing figures). A benchmark, not a test.

    .venv/bin/python -m bench.sla_sim                      # 1 and 2 workers, 1,000 tickets each
    .venv/bin/python -m bench.sla_sim --workers 2 --tickets 200 --spread 10

For each configuration: a fresh PostgreSQL database (on the server of TEST_DATABASE_URL,
default postgresql://postgres@127.0.0.1:5432), migrated; N paging worker *processes* (the real
`PagingWorker` loop, real clock, LISTEN/NOTIFY wake-ups) with a messenger that records every send
in a plain table (no unique constraint, so a duplicate would show); this process creates the
tickets spread over `--spread` seconds and plays the advisors: each ticket is acknowledged after a
random 1-15 s (20 % never), and resolved a random while later (30 % never), like `接单` / `解决`.
The policy is tests/fixtures/sla_policy_fast.yml: page at once, re-page at 5 s, escalate at the
10 s acknowledgement deadline, escalate again at the 60 s resolution deadline, plus the guest
notices (who took it, resolved).

Then every step is judged against what happened:
- due: the step had to fire (nobody acknowledged / resolved before it fell due, or a notice);
- on time: its first send went out within 1 s of its due time; late: later than that;
- twice: a recipient got the same step more than once; never: due but no send at all;
- skipped: correctly not sent (the clock got there first);
- raced: sent although the acknowledgement is stamped before the due time (the advisor's
  acknowledgement and the worker's firing crossed at the deadline, within milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    select,
    text,
)
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "tests" / "fixtures" / "sla_policy_fast.yml"
SERVER_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
ON_TIME_S = 1.0

meta = MetaData()
sends = Table(
    "sla_sim_sends",
    meta,
    Column("id", Integer, primary_key=True),
    Column("step_id", Integer, nullable=False),
    Column("target", String(64), nullable=False),
    Column("worker", String(64), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ---- the worker processes -----------------------------------------------------------------------


class RecordingToDb:
    """A Messenger that records each send as a row (what WeCom would have received)."""

    def __init__(self, url: str, worker: str):
        self.engine = create_engine(url, future=True, pool_size=5, max_overflow=10)
        self.worker = worker

    def _insert(self, dedupe_key: str) -> None:
        _, step_id, target = dedupe_key.split(":", 2)
        with self.engine.begin() as conn:
            conn.execute(
                sends.insert().values(
                    step_id=int(step_id), target=target[:64], worker=self.worker, sent_at=utcnow()
                )
            )

    async def _record(self, dedupe_key: str) -> None:
        await asyncio.to_thread(self._insert, dedupe_key)

    async def app_textcard(self, userid, title, description, url, btntxt, *, dedupe_key):
        await self._record(dedupe_key)

    async def app_text(self, userid, text_, *, dedupe_key=None):
        if dedupe_key:
            await self._record(dedupe_key)

    async def group_post(self, webhook, text_, mention, *, dedupe_key):
        await self._record(dedupe_key)

    async def guest_text(self, sender_id, text_, *, dedupe_key):
        await self._record(dedupe_key)


def run_worker_process(url: str, worker_id: str) -> int:
    from bot.crm.store import CRMStore
    from bot.paging.context import GuestContext
    from bot.paging.policy import load_policy
    from bot.paging.store import PagingStore
    from bot.paging.worker import PagingWorker

    from bot.paging.runtime import worker_engine

    logging.basicConfig(level=logging.ERROR)
    store = PagingStore(worker_engine(url))
    worker = PagingWorker(
        store,
        load_policy(POLICY),
        RecordingToDb(url, worker_id),
        context=GuestContext(CRMStore(store.engine)),
        worker_id=worker_id,
    )

    async def main() -> None:
        from bot.paging.runtime import use_worker_threads

        loop = asyncio.get_running_loop()
        use_worker_threads(worker)
        loop.add_signal_handler(signal.SIGTERM, worker.stop)
        await worker.run()

    asyncio.run(main())
    return 0


# ---- one configuration --------------------------------------------------------------------------


def make_database() -> tuple[str, callable]:
    server = make_url(SERVER_URL)
    name = f"sla_sim_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return server.set(database=name).render_as_string(hide_password=False), drop


def simulate(workers: int, tickets: int, spread_s: float, seed: int, keep: bool) -> dict:
    from bot.crm.db import upgrade
    from bot.crm.store import CRMStore
    from bot.paging.store import PagingStore

    url, drop = make_database()
    procs = []
    try:
        upgrade(url)
        engine = create_engine(url, future=True)
        meta.create_all(engine)
        crm = CRMStore(url)
        paging = PagingStore(url)
        guests = [f"kf:sim-{i:03d}" for i in range(50)]
        for i, sender in enumerate(guests):
            crm.get_or_create_guest(sender, name=f"客人{i}")
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        for n in range(workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.sla_sim", "--run-worker", url, f"w{n + 1}"],
                    cwd=ROOT,
                    env=env,
                )
            )
        time.sleep(3.0)  # the workers import and connect

        rng = random.Random(seed)
        plan = []  # (when, kind, ticket index)
        start = time.monotonic() + 0.5
        for i in range(tickets):
            created = start + spread_s * i / tickets
            plan.append((created, "create", i))
            if rng.random() < 0.8:
                ack = created + rng.uniform(1.0, 15.0)
                plan.append((ack, "ack", i))
                if rng.random() < 0.7:
                    plan.append((ack + rng.uniform(1.0, 70.0), "resolve", i))
        plan.sort()
        ticket_ids: dict[int, int] = {}
        pending_late: list = []
        advisors = ("advisor_li", "advisor_zhou")

        def case_of(i: int):
            return paging.clock_for("ticket", ticket_ids[i]) if i in ticket_ids else None

        def act(kind: str, i: int) -> bool:
            if kind == "create":
                t = crm.create_ticket(
                    guests[i % len(guests)],
                    kind="complaint",
                    category="卫生",
                    description=f"模拟投诉 {i}",
                    sla_class="complaint_routine",
                )
                ticket_ids[i] = t.id
                return True
            case = case_of(i)
            if case is None:
                return False  # the page has not gone out yet: an advisor cannot answer it
            if kind == "ack":
                paging.acknowledge(case.id, advisors[i % 2], utcnow())
            else:
                paging.resolve(case.id, advisors[i % 2], "已处理（模拟）", utcnow())
            return True

        for when, kind, i in plan:
            wait = when - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not act(kind, i):
                pending_late.append((kind, i))
            retry = []
            for item in pending_late:
                if not act(*item):
                    retry.append(item)
            pending_late = retry
        deadline = time.monotonic() + 90
        while pending_late and time.monotonic() < deadline:
            time.sleep(0.1)
            pending_late = [item for item in pending_late if not act(*item)]
        # Let the last resolution escalations (60 s) and notices fall due, then wait until
        # nothing due is left unfired (at most 60 s more) before stopping the workers.
        last_created = start + spread_s
        time.sleep(max(0.0, last_created + 60 + 2 - time.monotonic()))
        # (The driver itself may run behind on a busy machine, so the last tickets can be later
        # than planned: wait for every step to be settled, not for a fixed time.)
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up:
            with engine.connect() as conn:
                left = conn.execute(
                    text("SELECT count(*) FROM sla_steps WHERE status IN " "('pending', 'firing')")
                ).scalar()
            if not left:
                break
            time.sleep(0.5)
        stopped_at = utcnow()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
        return judge(engine, paging, workers, tickets, url if keep else None, stopped_at)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        if not keep:
            try:
                from bot.crm.db import make_engine  # noqa: F401 - connections closed below

                drop()
            except Exception as exc:  # pragma: no cover
                print(f"could not drop the simulation database: {exc}", file=sys.stderr)


def judge(engine, paging, workers: int, tickets: int, kept_url, stopped_at: dt.datetime) -> dict:
    clocks = {c.id: c for c in paging.clocks()}
    steps = paging.steps()
    with engine.connect() as conn:
        rows = conn.execute(
            select(sends.c.step_id, sends.c.target, sends.c.sent_at, sends.c.worker)
        ).all()
    first_send: dict[int, dt.datetime] = {}
    per_target: dict[tuple, int] = {}
    by_worker: dict[str, int] = {}
    for step_id, target, sent_at, worker in rows:
        sent_at = sent_at if sent_at.tzinfo else sent_at.replace(tzinfo=dt.timezone.utc)
        first_send[step_id] = min(first_send.get(step_id, sent_at), sent_at)
        per_target[(step_id, target)] = per_target.get((step_id, target), 0) + 1
        by_worker[worker] = by_worker.get(worker, 0) + 1
    twice_steps = {step_id for (step_id, _), n in per_target.items() if n > 1}
    result = {
        "workers": workers,
        "tickets": tickets,
        "cases": len(clocks),
        "steps": len(steps),
        "due": 0,
        "on_time": 0,
        "late": 0,
        "twice": len(twice_steps),
        "never": 0,
        "skipped": 0,
        "raced": 0,
        "sends": len(rows),
        "by_worker": by_worker,
        "delays": [],
        "page_delays": [],
        "failed": 0,
        "after_stop": 0,
    }
    for step in steps:
        clock = clocks[step.clock_id]
        if step.due_at > stopped_at:  # the simulation ended first (cannot happen once drained)
            result["after_stop"] += 1
            continue
        if step.step.startswith("guest_"):
            must = True
        elif step.until == "ack":
            reached = clock.acknowledged_at or (
                clock.resolved_at if clock.state == "resolved" else None
            )
            must = reached is None or reached > step.due_at
        else:
            must = clock.resolved_at is None or clock.resolved_at > step.due_at
        sent = first_send.get(step.id)
        if step.status == "failed":
            result["failed"] += 1
        if not must:
            if sent is None:
                result["skipped"] += 1
            else:
                result["raced"] += 1
            continue
        result["due"] += 1
        if sent is None:
            result["never"] += 1
            result.setdefault("never_detail", []).append(
                f"{step.step} {step.status} attempts={step.attempts} error={(step.error or '')[:160]}"
            )
            continue
        delay = (sent - step.due_at).total_seconds()
        result["delays"].append(delay)
        if step.step == "page":
            result["page_delays"].append(delay)
        if delay <= ON_TIME_S:
            result["on_time"] += 1
        else:
            result["late"] += 1
    if kept_url:
        result["database"] = kept_url
    return result


def _pct(values: list, q: float) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]:.2f}"


def print_table(results: list[dict]) -> None:
    headers = [
        "workers",
        "tickets",
        "steps due",
        "on time (≤1 s)",
        "late",
        "twice",
        "never",
        "skipped (not due)",
        "raced",
        "delay p50/p99/max s",
        "first page p50/p99 s",
        "sends by worker",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                str(r["workers"]),
                str(r["tickets"]),
                str(r["due"]),
                str(r["on_time"]),
                str(r["late"]),
                str(r["twice"]),
                str(r["never"]),
                str(r["skipped"]),
                str(r["raced"]),
                f"{_pct(r['delays'], .5)}/{_pct(r['delays'], .99)}/{max(r['delays'] or [0]):.2f}",
                f"{_pct(r['page_delays'], .5)}/{_pct(r['page_delays'], .99)}",
                ", ".join(f"{k}: {v}" for k, v in sorted(r["by_worker"].items())),
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sla_sim", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--spread", type=float, default=20.0, help="seconds over which tickets arrive"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the simulation databases")
    parser.add_argument("--run-worker", nargs=2, metavar=("URL", "ID"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_worker:
        return run_worker_process(*args.run_worker)
    results = []
    for n in args.workers:
        print(
            f"simulating {args.tickets} tickets over {args.spread:.0f} s with {n} worker(s)...",
            flush=True,
        )
        results.append(simulate(n, args.tickets, args.spread, args.seed, args.keep))
    print()
    print_table(results)
    for r in results:
        if r["after_stop"]:
            print(f"  ({r['workers']} worker(s): {r['after_stop']} steps not yet due when stopped)")
        for line in sorted(set(r.get("never_detail", [])))[:10]:
            print(f"  never ({r['workers']} worker(s)): {line}")
    bad = sum(r["twice"] + r["never"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""`concierge worker` and `concierge sla-report` (registered through bot.cli.COMMAND_MODULES).

concierge worker [--poll 0.5] [--once] [--worker-id ID]
concierge sla-report [--since 7d | 2026-11-01] [--class complaint_routine] [--json]
concierge sla-policy check [FILE]
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from bot.core.time import china_midnight

EXIT_OK, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 0, 1, 2

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    worker = subparsers.add_parser("worker", help="run the SLA paging worker (pages, escalations)")
    worker.add_argument(
        "--poll", type=float, default=0.5, help="seconds between looks for new cases (default 0.5)"
    )
    worker.add_argument("--once", action="store_true", help="one tick, then exit")
    worker.add_argument("--worker-id", help="name in the step claims (default host:pid:random)")
    worker.set_defaults(func=_worker)

    report = subparsers.add_parser("sla-report", help="SLA figures per class and advisor")
    report.add_argument("--since", help="7d, 24h, or a date (2026-11-01); default: everything")
    report.add_argument("--class", dest="sla_class", help="only this SLA class")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.set_defaults(func=_sla_report)

    policy = subparsers.add_parser("sla-policy", help="the SLA policy file")
    sub = policy.add_subparsers(dest="policy_command", required=True)
    check = sub.add_parser("check", help="validate a policy file (default: SLA_POLICY_FILE)")
    check.add_argument("file", nargs="?")
    check.set_defaults(func=_policy_check)


def _fail(message: str, code: int) -> int:
    print(f"concierge: {message}", file=sys.stderr)
    return code


def _load_policy(path=None):
    from bot.paging.policy import PolicyError, load_policy

    try:
        return load_policy(path), None
    except PolicyError as exc:
        return None, str(exc)


def _policy_check(args) -> int:
    policy, error = _load_policy(args.file)
    if error:
        return _fail(error, EXIT_UNAVAILABLE)
    classes = ", ".join(policy.classes)
    print(f"{policy.source}: ok ({len(policy.properties)} properties; classes: {classes})")
    return EXIT_OK


def _worker(args) -> int:
    import asyncio

    from bot.paging.runtime import build_worker, check_schema, tick_once

    from bot.ops.http import setup_logging
    from bot.preflight import start_process
    from bot.settings import get_settings

    setup_logging("worker", get_settings())

    start_process("worker")  # production: refuses to start on default secrets or embedded stores
    policy, error = _load_policy()
    if error:
        return _fail(error, EXIT_UNAVAILABLE)
    problem = check_schema(args.database_url)
    if problem:
        return _fail(problem, EXIT_UNAVAILABLE)
    from bot.paging.runtime import get_policy

    # validated above; the worker gets the live policy so SLA edits need no restart
    worker = build_worker(
        database_url=args.database_url,
        policy=get_policy(),
        poll_s=args.poll,
        worker_id=args.worker_id,
    )
    if args.once:
        report = asyncio.run(tick_once(worker))
        print(report)
        return EXIT_OK
    asyncio.run(_run_with_ops(worker, args.database_url))
    return EXIT_OK


async def _run_with_ops(worker, database_url) -> None:
    """The worker, with /metrics, /healthz and /readyz on WORKER_METRICS_PORT (bot/ops)."""
    from bot.ops.http import build, start_server
    from bot.paging.runtime import run_worker
    from bot.settings import get_settings
    from bot.wecom.db import get_engine

    exposition, readiness = build("worker", get_engine(database_url))
    runner = None
    try:
        runner = await start_server(
            exposition, readiness, "127.0.0.1", get_settings().worker_metrics_port
        )
    except OSError as exc:  # a second worker on this host: it works, only without the endpoint
        log.warning("worker metrics port not available (%s): /metrics off", exc)
    try:
        await run_worker(worker)
    finally:
        if runner is not None:
            await runner.cleanup()


def parse_since(text: str | None, now: dt.datetime) -> dt.datetime | None:
    if not text:
        return None
    text = text.strip().lower()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[-1:] in units and text[:-1].isdigit():
        return now - dt.timedelta(**{units[text[-1]]: int(text[:-1])})
    day = dt.date.fromisoformat(text)
    return china_midnight(day)


def _sla_report(args) -> int:
    from bot.paging.report import build_report, format_report
    from bot.paging.runtime import check_schema
    from bot.paging.store import PagingStore

    policy, error = _load_policy()
    if error:
        return _fail(error, EXIT_UNAVAILABLE)
    problem = check_schema(args.database_url)
    if problem:
        return _fail(problem, EXIT_UNAVAILABLE)
    now = dt.datetime.now(dt.timezone.utc)
    try:
        since = parse_since(args.since, now)
    except ValueError:
        return _fail(
            f"--since {args.since!r}: use 7d, 24h or a date like 2026-11-01", EXIT_NOT_FOUND
        )
    store = PagingStore(args.database_url)
    try:
        clocks = store.clocks(since=since, sla_class=args.sla_class)
        ids = {c.id for c in clocks}
        steps = [s for s in store.steps() if s.clock_id in ids]
    finally:
        store.close()
    report = build_report(policy, clocks, steps, now, since)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
    return EXIT_OK

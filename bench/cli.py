"""`python -m bench` (`make bench`): our bot against stock Rasa on the same domain, data and
conversations. See docs/PERFORMANCE.md for what it measures and the findings.

    python -m bench                       # everything, defaults sized for ~10 min on 2 cores
    python -m bench --duration 5 --guests 4 --only rest --skip-baseline   # a quick look
    python -m bench --pg                  # CRM, inbox and tracker store on PostgreSQL, Redis locks
    python -m bench --profile             # + py-spy profiles of our servers under load
    python -m bench --report results/bench/<ts>/results.json   # print an earlier run's table again
    python -m bench --skip-baseline --rate 4 --try jsonschema --try sqlite   # measure a lever

Steps: train the baseline if missing (timed), time a full training of ours (once per change of
the inputs), then for each stack (baseline first, then ours): start it on free ports with a demo
CRM of its own, warm it up, and per channel (REST, then WeCom kf through the sandbox) run
(1) saturation: closed loop, each guest sends its next line when the reply has arrived;
(2) a fixed offered rate (open loop), by default half the baseline's saturation (both stacks get
the same rate) and, for ours, also half of our own saturation. Prints the side-by-side table and
writes results.json + chart.png under --out/<timestamp>/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench import load, profile, report, train
from bench.conversations import SCRIPTS, intent_mix
from bench.stack import Stack
from bot.settings import PROJECT_ROOT

log = logging.getLogger("bench")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--duration", type=float, default=8.0, help="seconds measured per run (default 8)"
    )
    p.add_argument(
        "--guests",
        type=int,
        default=50,
        help="concurrent guests of the saturation runs (default 50)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="fixed offered rate, msg/s (default: half the baseline's saturation, per channel)",
    )
    p.add_argument("--only", choices=("rest", "wecom"), help="one channel only")
    p.add_argument("--skip-baseline", action="store_true", help="only our stack")
    p.add_argument("--skip-ours", action="store_true", help="only the baseline stack")
    p.add_argument(
        "--out",
        type=Path,
        default=PROJECT_ROOT / "results" / "bench",
        help="results folder (a <timestamp>/ subfolder per run)",
    )
    p.add_argument(
        "--pg",
        action="store_true",
        help="PostgreSQL (a fresh database, dropped after) + Redis instead of SQLite/in-process",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Sanic workers of OUR rasa server (>1 needs --pg: Redis lock store)",
    )
    p.add_argument(
        "--profile", action="store_true", help="py-spy profiles of our servers during saturation"
    )
    p.add_argument(
        "--try",
        dest="tries",
        action="append",
        default=[],
        metavar="PATCH",
        choices=["jsonschema", "sqlite"],
        help="run OUR rasa server with an experimental speed-up (bench/rasa_patched.py); repeatable",
    )
    p.add_argument(
        "--tracker-store",
        choices=("sql", "memory"),
        default="sql",
        help="OUR tracker store: sql (SQLite, or PostgreSQL with --pg; the product's) or memory "
        "(an experiment: what the SQL tracker store costs)",
    )
    p.add_argument(
        "--accuracy",
        action="store_true",
        help="also the NLU held-out figures of both models (python -m bot.nlu.evaluate)",
    )
    p.add_argument(
        "--retrain", action="store_true", help="train the baseline and time both trainings again"
    )
    p.add_argument("--no-train-timing", action="store_true", help="do not time a training of ours")
    p.add_argument("--model", type=Path, default=train.OURS_MODEL, help="our model")
    p.add_argument(
        "--baseline-model",
        type=Path,
        help="serve this baseline model instead of training models/baseline/ (its training "
        "time is then not reported), e.g. one trained earlier with --baseline-epochs 100",
    )
    p.add_argument(
        "--baseline-epochs",
        type=int,
        default=1,
        metavar="N",
        help="train the baseline's DIET/ResponseSelector/TED/UnexpecTED for N epochs (default 1, so a "
        "fresh clone fits in 10 minutes; 100 = Rasa's stock config, well over 10 minutes on 2 "
        "cores). Same components and sizes, but an under-trained policy takes other dialogue "
        "paths: the fewer epochs, the slower the baseline served (docs/PERFORMANCE.md); "
        "use 5 or more for the figure to quote",
    )
    p.add_argument(
        "--no-intake",
        action="store_true",
        help="OUR WeCom callbacks to Rasa's own routes instead of the intake server (as the baseline)",
    )
    p.add_argument(
        "--no-mix",
        action="store_true",
        help="skip the saturation run on the intent mix (bench.conversations.intent_mix: lines of "
        "every intent in data/nlu, five to a conversation)",
    )
    p.add_argument(
        "--warmup", type=float, default=2.0, help="closed-loop warm-up seconds (not counted)"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="per-message timeout, s")
    p.add_argument(
        "--start-timeout",
        type=float,
        default=600.0,
        help="how long a server may take to start, s (the baseline loads three TF models)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the stacks' databases in the results folder"
    )
    p.add_argument(
        "--report", type=Path, help="print the table of an earlier results.json and exit"
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.workers > 1 and not args.pg:
        p.error("--workers > 1 needs --pg: several Sanic workers need the Redis lock store")
    return args


def _epochs(args) -> Optional[int]:
    """None = the stock config file itself (100 epochs)."""
    return None if args.baseline_epochs in (None, 100) else args.baseline_epochs


def senders_for(stack_name: str, channel: str, n: int) -> List[str]:
    prefix = "kf:" if channel == "wecom" else ""
    tag = "w" if channel == "wecom" else "r"
    return [f"{prefix}bench-{tag}{i:04d}" for i in range(n)]


async def wait_quiet(stack: Stack, seconds: float = 1.0, limit_s: float = 30.0) -> None:
    """Between WeCom runs: until the sandbox saw no API call for `seconds` (the connector has
    worked off its inbox), so one run's backlog is not measured in the next."""
    import aiohttp

    deadline = time.monotonic() + limit_s
    last = None
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(
                f"{stack.sandbox_url}/_sandbox/calls", params={"since": str(last or 0)}
            ) as r:
                calls = (await r.json())["calls"]
            if last is not None and not calls:
                return
            last = max([c["seq"] for c in calls] + [last or 0])
            await asyncio.sleep(seconds)


async def run_channel(
    stack: Stack,
    stack_name: str,
    channel: str,
    args,
    senders: List[str],
    base_sat: Optional[float],
    outdir: Path,
) -> Dict[str, Any]:
    runs: Dict[str, Any] = {}
    client_cls = load.RestClient if channel == "rest" else load.WeComClient
    url = stack.rasa_url if channel == "rest" else stack.sandbox_url
    warm = senders[-len(SCRIPTS) :]
    pool = senders[: -len(SCRIPTS)]
    async with client_cls(url, timeout_s=args.timeout) as client:
        lines = [SCRIPTS[name][0] for name in SCRIPTS]
        bad = await load.warm_up(client, warm, lines)
        bad += await load.warm_up(client, warm, [SCRIPTS[name][1] for name in SCRIPTS])
        if bad:
            log.warning("%s/%s: %d warm-up messages failed", stack_name, channel, bad)

        async def measured(name: str, coro) -> Dict[str, Any]:
            if channel == "wecom":
                await client.clear_calls()
            cpu0, t0 = stack.cpu(), time.monotonic()
            result = await coro
            cpu1, wall = stack.cpu(), time.monotonic() - t0
            data = result.as_dict()
            data["server_cpu_s"] = {k: round(cpu1.get(k, 0) - cpu0.get(k, 0), 2) for k in cpu0}
            if result.ok:
                data["server_cpu_ms_per_msg"] = {
                    k: round(1000 * v / max(1, result.ok), 1)
                    for k, v in data["server_cpu_s"].items()
                }
            data["wall_s"] = round(wall, 1)
            data["alive"] = stack.alive()
            log.info("%s/%s/%s: %s", stack_name, channel, name, _one_line(data))
            if not all(data["alive"].values()):
                log.error(
                    "a process died: %s",
                    {k: stack.log_tail(k) for k, v in data["alive"].items() if not v},
                )
            if channel == "wecom":
                await wait_quiet(stack)
            return data

        profiles = []

        def start_profiles() -> None:
            if args.profile and stack_name == "ours" and profile.available():
                for proc in ("rasa", "actions"):
                    out = outdir / f"profile-{channel}-{proc}.txt"
                    rec = profile.start_record(
                        stack.procs[proc].pid, out, args.warmup + args.duration
                    )
                    if rec:
                        profiles.append((proc, out, rec))

        if args.no_mix:
            start_profiles()
        runs["saturation"] = await measured(
            "saturation",
            load.closed_loop(client, pool, args.guests, args.duration, warmup_s=args.warmup),
        )
        if not args.no_mix:
            start_profiles()  # the whole bot: where a message's time goes on the intent mix
            # every intent of the training data, action-heavy ones included (forms, complaints
            # with their pages, orders, erasure requests): the whole bot, not the scripted flows
            runs["mix_saturation"] = await measured(
                "mix_saturation",
                load.closed_loop(
                    client,
                    pool,
                    args.guests,
                    args.duration,
                    warmup_s=args.warmup,
                    name="mix",
                    library=intent_mix(),
                ),
            )
        for proc, out, rec in profiles:
            rec.wait(timeout=60)
        sat = runs["saturation"]["throughput"]
        rate = args.rate or 0.5 * (base_sat if base_sat else sat)
        open_guests = max(args.guests, 20)
        if rate > 0:
            runs["fixed_rate"] = await measured(
                "fixed_rate",
                load.open_loop(client, pool, rate, args.duration, max_guests=open_guests),
            )
        half_own = 0.5 * sat
        if stack_name == "ours" and half_own > 0 and abs(half_own - rate) / rate > 0.1:
            runs["half_own_saturation"] = await measured(
                "half_own_saturation",
                load.open_loop(
                    client, pool, half_own, args.duration, max_guests=open_guests, seed=11
                ),
            )
        if channel == "wecom":
            runs["wecom_client"] = {
                "unmatched_replies": client.unmatched_replies,
                "poll_errors": client.poll_errors,
            }
    for proc, out, _ in profiles:
        cats = profile.RASA_CATEGORIES if proc == "rasa" else profile.ACTIONS_CATEGORIES
        summary = profile.summarize(out, cats)
        runs.setdefault("profiles", {})[proc] = summary
        print(profile.format_summary(f"profile {stack_name} {channel} {proc}", summary), flush=True)
    return runs


def holdout_figures(model: Path, out: Path) -> Dict[str, Any]:
    """The NLU figures on tests/nlu_holdout (bot.nlu.evaluate) that the speed must not cost."""
    import subprocess

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.nlu.evaluate",
            "--model",
            str(model),
            "--out",
            str(out),
            "--no-rasa-report",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "RASA_TELEMETRY_ENABLED": "false"},
    )
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {
            "error": f"evaluate exited {proc.returncode}: {(proc.stderr or proc.stdout)[-500:]}"
        }
    figures: Dict[str, Any] = {}
    for variant in ("simplified", "traditional"):
        rep = summary.get(variant) or {}
        figures[variant] = {
            k: rep.get(k)
            for k in (
                "accuracy",
                "macro_f1",
                "complain_recall",
                "oos_recall",
                "false_fallback_rate",
            )
        }
        figures[variant]["entity_f1"] = (rep.get("entities") or {}).get("f1")
    return figures


def _one_line(d: Dict[str, Any]) -> str:
    r = d.get("reply_ms", {})
    text = (
        f"{d['throughput']:.1f} msg/s ok={d['ok']} err={d['errors']} timeouts={d['timeouts']} "
        f"skipped={d['skipped']} p50={r.get('p50')} p95={r.get('p95')} p99={r.get('p99')} ms"
    )
    if "ack_ms" in d:
        text += f" ack p50={d['ack_ms'].get('p50')} p99={d['ack_ms'].get('p99')} ms"
    if "server_cpu_ms_per_msg" in d:
        text += f" cpu/msg={d['server_cpu_ms_per_msg']}"
    return text


def run_stack(name: str, model: Path, args, outdir: Path, base: Optional[Dict]) -> Dict[str, Any]:
    channels = [args.only] if args.only else ["rest", "wecom"]
    workdir = outdir / name
    n = max(4 * args.guests, 40) + len(SCRIPTS)
    senders = {c: senders_for(name, c, n) for c in channels}
    stack = Stack(
        name,
        model,
        workdir,
        wecom="wecom" in channels,
        pg=args.pg,
        sanic_workers=args.workers if name == "ours" else 1,
        start_timeout_s=args.start_timeout,
        rasa_patches=list(args.tries) if name == "ours" else [],
        product_entry=name == "ours",
        intake=name == "ours" and not args.no_intake,
        tracker_store=args.tracker_store if name == "ours" else "sql",
    )
    data: Dict[str, Any] = {"model": str(model), "runs": {}}
    try:
        stack.start([s for c in channels for s in senders[c]])
        data["startup_s"] = dict(stack.startup_s)
        data["ports"] = dict(stack.ports)
        for channel in channels:
            base_sat = ((base or {}).get("runs", {}).get(channel, {}).get("saturation") or {}).get(
                "throughput"
            )
            data["runs"][channel] = asyncio.run(
                run_channel(stack, name, channel, args, senders[channel], base_sat, outdir)
            )
    finally:
        stack.stop()
        data["memory"] = stack.memory.report_mb()
        if not args.keep:
            for db in workdir.glob("*.db"):
                db.unlink()
    return data


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.report:
        print(report.render(json.loads(args.report.read_text(encoding="utf-8"))))
        return 0
    started = dt.datetime.now()
    outdir = args.out / started.strftime("%Y%m%d-%H%M%S")
    outdir.mkdir(parents=True, exist_ok=True)
    if not args.model.exists():
        print(
            f"bench: no model at {args.model}: run `make train` first (make bench does)",
            file=sys.stderr,
        )
        return 2
    if args.profile and not profile.available():
        log.warning(
            "--profile: py-spy is not installed (pip install -r requirements.txt); no profiles"
        )
    results: Dict[str, Any] = {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "argv": sys.argv[1:],
            "duration_s": args.duration,
            "guests": args.guests,
            "rate": args.rate,
            "only": args.only,
            "pg": args.pg,
            "baseline_model": str(args.baseline_model or train.baseline_model(_epochs(args))),
            "baseline_epochs": None if args.baseline_model else args.baseline_epochs,
            "intake": not args.no_intake,
            "workers": args.workers,
            "tries": args.tries,
            "tracker_store": args.tracker_store,
            "cpus": os.cpu_count(),
            "loadavg_start": round(os.getloadavg()[0], 2),
            "note": "figures from whatever else the machine was running; see loadavg",
        },
        "training": {},
        "stacks": {},
    }
    t0 = time.monotonic()
    if not args.skip_baseline and not args.baseline_model:
        results["training"]["baseline"] = train.ensure_baseline(
            outdir, retrain=args.retrain, epochs=_epochs(args)
        )
        log.info(
            "baseline training: %s s%s",
            results["training"]["baseline"]["seconds"],
            " (measured earlier)" if results["training"]["baseline"].get("reused") else "",
        )
    if not args.no_train_timing and not args.skip_ours:
        results["training"]["ours"] = train.time_ours(outdir, retrain=args.retrain)
        log.info(
            "our training: %s s%s",
            results["training"]["ours"]["seconds"],
            " (measured earlier)" if results["training"]["ours"].get("reused") else "",
        )
    if args.accuracy:
        for name, model in (
            ("baseline", args.baseline_model or train.baseline_model(_epochs(args))),
            ("ours", args.model),
        ):
            if (name == "baseline" and args.skip_baseline) or (name == "ours" and args.skip_ours):
                continue
            results.setdefault("accuracy", {})[name] = holdout_figures(
                model, outdir / f"nlu-{name}"
            )
            log.info("holdout %s: %s", name, results["accuracy"][name])
    plan = []
    if not args.skip_baseline:
        plan.append(("baseline", args.baseline_model or train.baseline_model(_epochs(args))))
    if not args.skip_ours:
        plan.append(("ours", args.model))
    try:
        for name, model in plan:
            results["stacks"][name] = run_stack(
                name, model, args, outdir, results["stacks"].get("baseline")
            )
            report.write_json(results, outdir / "results.json")
    finally:
        results["meta"]["wall_s"] = round(time.monotonic() - t0, 1)
        results["meta"]["loadavg_end"] = round(os.getloadavg()[0], 2)
        report.write_json(results, outdir / "results.json")
    chart = report.write_chart(results, outdir / "chart.png")
    print()
    print(report.render(results))
    print(
        f"\nresults: {outdir / 'results.json'}"
        + (f", chart: {chart}" if chart else "")
        + f"; whole run {results['meta']['wall_s']} s"
    )
    return 0

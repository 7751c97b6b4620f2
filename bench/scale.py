"""`make bench-scale` (python -m bench.scale): the production set on this machine's PostgreSQL,
Redis and RabbitMQ with 1 and 2 replicas of each process, and the fault table. A benchmark, not a
test: it prints figures, it asserts nothing.

Stack (bench.stack.Stack): N Rasa servers (`python -m bot.rasa_main`, PostgreSQL tracker store,
Redis lock store, pika event broker), N action servers (Rasa i calls action server i mod N), N
intake servers (the WeCom sandbox delivers callbacks to them in turn, a retry to the next: a load
balancer), the SLA worker and the event consumer. The load: 50 concurrent 微信客服 guests through
the sandbox (closed loop: each sends its next line when the reply to the last one came), on a mix
drawn from every intent of data/nlu (`intent_mix`: examples of every intent, shuffled, five lines a
conversation).

Scale rows: replies/s, reply p50/p95, callback answer p99, CPU seconds per process.

Fault table (2 replicas of each, 50 guests): for each fault, `--before` seconds of load, the
fault, `--after` seconds of load, then a drain (until the inbox is worked off). A killed process
is started again at once, as systemd's Restart=always or Kubernetes would. Counted from the
stores, not the client:
- lost: callbacks the intake accepted whose message never reached the tracker (no user event
  with that msgid), plus callbacks refused after every sandbox retry;
- answered twice: msgids with more than one user event in the tracker (a turn run twice);
- pages twice: the same page (recipient + text) sent twice by message/send;
- events missing: tracker events (since the stack started) not in conversation_events after the
  drain (a duplicate cannot be stored: unique key);
- recovery: seconds from the fault until replies flow at half the pre-fault rate again (over a
  2 s window), and until the restarted process answered.
Restarting Redis and RabbitMQ touches every user of this machine: the bench must run under
/tmp/concierge-cpu.lock (the Makefile target does), and both come back at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional


from bench import load
from bench.conversations import intent_mix, intents_covered
from bench.stack import BENCH_BACKFILL_GRACE_S, Stack, temp_workdir
from bench.stats import latency_summary, percentile
from bot.settings import PROJECT_ROOT

log = logging.getLogger("bench")

FAULTS = ("rasa", "actions", "intake", "worker", "events", "redis", "rabbitmq")
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def make_stack(replicas: int, model: Path, workdir: Path, start_timeout: float) -> Stack:
    return Stack(
        f"scale{replicas}",
        model,
        workdir / f"r{replicas}",
        wecom=True,
        intake=True,
        pg=True,
        product_entry=True,
        rasa_replicas=replicas,
        action_replicas=replicas,
        intake_replicas=replicas,
        events=True,
        worker=True,
        start_timeout_s=start_timeout,
    )


def senders(n: int) -> List[str]:
    return [f"kf:bench-w{i:04d}" for i in range(n)]


# ---- the stores after a run ------------------------------------------------------------------


def _engine(stack: Stack):
    from sqlalchemy import create_engine

    return create_engine(stack.database_url, future=True)


def inbox_since(stack: Stack, after_id: int) -> List[Dict[str, Any]]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from bot.wecom.models import InboxMessage

    engine = _engine(stack)
    try:
        with Session(engine) as s:
            rows = s.execute(select(InboxMessage).where(InboxMessage.id > after_id)).scalars().all()
            return [
                {
                    "id": r.id,
                    "status": r.status,
                    "kind": r.kind,
                    "msgid": (r.payload or {}).get("msgid") or r.dedupe_key,
                }
                for r in rows
            ]
    finally:
        engine.dispose()


def max_inbox_id(stack: Stack) -> int:
    from sqlalchemy import text

    engine = _engine(stack)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM wecom_inbox")).scalar())
    finally:
        engine.dispose()


def open_inbox_rows(stack: Stack) -> int:
    from sqlalchemy import text

    engine = _engine(stack)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT COUNT(*) FROM wecom_inbox WHERE status IN "
                        "('pending', 'processing')"
                    )
                ).scalar()
            )
    finally:
        engine.dispose()


def tracker_user_msgids(stack: Stack, after_event_id: int) -> Dict[str, int]:
    """message_id -> how many user events carry it, among tracker events after the id."""
    from sqlalchemy import text

    engine = _engine(stack)
    counts: Dict[str, int] = {}
    try:
        with engine.connect() as conn:
            for (data,) in conn.execute(
                text("SELECT data FROM events WHERE type_name = 'user' " "AND id > :a"),
                {"a": after_event_id},
            ):
                mid = (json.loads(data) if data else {}).get("message_id")
                if mid:
                    counts[mid] = counts.get(mid, 0) + 1
    finally:
        engine.dispose()
    return counts


def event_counts(stack: Stack) -> Dict[str, int]:
    from sqlalchemy import text

    engine = _engine(stack)
    try:
        with engine.connect() as conn:
            return {
                "tracker": int(conn.execute(text("SELECT COUNT(*) FROM events")).scalar()),
                "max_tracker_id": int(
                    conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM events")).scalar()
                ),
                "stream": int(
                    conn.execute(text("SELECT COUNT(*) FROM conversation_events")).scalar()
                ),
            }
    finally:
        engine.dispose()


def sandbox_pages(stack: Stack, *, kept_back: bool = False) -> Dict[tuple, int]:
    """The textcards WeCom delivered, by advisor and card; with `kept_back`, instead the re-sends
    its duplicate check kept from the advisor (the page had arrived before)."""
    import urllib.request

    with urllib.request.urlopen(
        f"{stack.sandbox_url}/_sandbox/calls?since=0&path=/cgi-bin/" "message/send", timeout=30
    ) as resp:
        calls = json.loads(resp.read())["calls"]
    counts: Dict[tuple, int] = {}
    for call in calls:
        body = call.get("body") or {}
        if call.get("errcode") not in (None, 0) or body.get("msgtype") != "textcard":
            continue  # pages are textcards (bot/paging/pager.py); the rest are other notices
        if bool(call.get("duplicate")) != kept_back:
            continue
        key = (str(body.get("touser")), json.dumps(body.get("textcard"), ensure_ascii=False))
        counts[key] = counts.get(key, 0) + 1
    return counts


def outbox_pages(stack: Stack, since_wall: float) -> Dict[tuple, int]:
    """The textcards the outbox recorded as sent (each its own step and target: dedupe key
    `sla:<step>:<target>`) and touched since then, keyed like sandbox_pages. A row still
    `sending` counts too: read after the sandbox's log, it is a send in flight at the count (WeCom
    took it, 'sent' not yet recorded), not a second delivery."""
    import datetime as dt

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from bot.wecom.models import OutboxMessage

    since = dt.datetime.fromtimestamp(since_wall - 1, dt.timezone.utc)
    engine = _engine(stack)
    counts: Dict[tuple, int] = {}
    try:
        with Session(engine) as s:
            for row in s.execute(
                select(OutboxMessage).where(
                    OutboxMessage.updated_at >= since,
                    OutboxMessage.status.in_(("sent", "sending")),
                    OutboxMessage.path.like("/cgi-bin/message/send%"),
                )
            ).scalars():
                body = row.body or {}
                if body.get("msgtype") != "textcard":
                    continue
                key = (
                    str(body.get("touser")),
                    json.dumps(body.get("textcard"), ensure_ascii=False),
                )
                counts[key] = counts.get(key, 0) + 1
    finally:
        engine.dispose()
    return counts


async def drain(stack: Stack, limit_s: float = 120.0) -> float:
    """Until the inbox is worked off and the event stream stopped growing; seconds waited."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < limit_s:
        pending = await asyncio.to_thread(open_inbox_rows, stack)
        counts = await asyncio.to_thread(event_counts, stack)
        if pending == 0 and counts == last:
            break
        last = counts
        await asyncio.sleep(2.0)
    return round(time.monotonic() - started, 1)


# ---- faults ------------------------------------------------------------------------------------


def wait_port(port: int, timeout: float = 60.0) -> float:
    import socket

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"port {port} did not come back in {timeout} s")


def inject(stack: Stack, fault: str) -> float:
    """Do the fault; returns the seconds until the process/service answered again."""
    started = time.monotonic()
    if fault == "redis":
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True)
        subprocess.run(REDIS_START, check=True, capture_output=True)
        wait_port(6379)
        return round(time.monotonic() - started, 2)
    if fault == "rabbitmq":
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
        wait_port(5672)
        return round(time.monotonic() - started, 2)
    name = {
        "rasa": stack.rasa_names[-1],
        "actions": stack.action_names[-1],
        "intake": stack.intake_names[-1],
    }.get(fault, fault)
    stack.kill(name)  # SIGKILL
    stack.restart(name)
    return round(time.monotonic() - started, 2)


def recovery_s(
    replies: List[tuple], t_fault: float, t_end: float, before_s: float
) -> Optional[float]:
    """Seconds after the fault until a 2 s window holds half the pre-fault reply rate."""
    ok = sorted(t for t, good in replies if good)
    pre = [t for t in ok if t_fault - before_s + 2 <= t < t_fault]
    rate = len(pre) / max(0.1, before_s - 2)
    if rate == 0:
        return None
    dip = False
    t = t_fault
    while t + 2 <= t_end:
        n = sum(1 for x in ok if t <= x < t + 2)
        if n < 0.5 * rate * 2:
            dip = True
        elif dip or t > t_fault + 1:
            return round(max(0.0, t - t_fault), 1) if dip else 0.0
        t += 0.5
    return None  # not recovered before the load stopped


async def fault_run(stack: Stack, fault: str, args, mix) -> Dict[str, Any]:
    inbox_start = await asyncio.to_thread(max_inbox_id, stack)
    events_start = await asyncio.to_thread(event_counts, stack)
    replies: List[tuple] = []
    refused: List[str] = []  # callbacks no intake took, after every sandbox retry

    def on_reply(t: float, outcome) -> None:
        replies.append((t, outcome.ok))
        if (outcome.error or "").startswith("callback not delivered"):
            refused.append(outcome.error)

    out: Dict[str, Any] = {"fault": fault}
    async with load.WeComClient(stack.sandbox_url, timeout_s=args.timeout) as client:
        # the client emptied the sandbox's call log: what it holds from now on is this run's
        pages_before = await asyncio.to_thread(sandbox_pages, stack)
        kept_before = await asyncio.to_thread(lambda: sandbox_pages(stack, kept_back=True))
        t_start, wall_start = time.monotonic(), time.time()

        async def fault_later():
            await asyncio.sleep(args.before)
            out["t_fault"] = time.monotonic()
            out["restart_s"] = await asyncio.to_thread(inject, stack, fault)

        injector = asyncio.create_task(fault_later())
        result = await load.closed_loop(
            client,
            senders(args.guests * 2),
            args.guests,
            args.before + args.after,
            warmup_s=0,
            name=f"fault-{fault}",
            library=mix,
            on_reply=on_reply,
        )
        await injector
        t_end = t_start + args.before + args.after
    out["drain_s"] = await drain(stack)
    # the consumer's backfill settles tracker rows once they are past its grace period
    await asyncio.sleep(max(0.0, BENCH_BACKFILL_GRACE_S + 4 - out["drain_s"]))
    inbox = await asyncio.to_thread(inbox_since, stack, inbox_start)
    seen = await asyncio.to_thread(tracker_user_msgids, stack, events_start["max_tracker_id"])
    events_end = await asyncio.to_thread(event_counts, stack)
    pages = await asyncio.to_thread(sandbox_pages, stack)
    kept = await asyncio.to_thread(lambda: sandbox_pages(stack, kept_back=True))
    try:
        recorded = await asyncio.to_thread(outbox_pages, stack, wall_start)
    except Exception as exc:  # a measuring problem must not end the bench: say so in the row
        log.warning("outbox pages unreadable: %s", exc)
        recorded, out["pages_error"] = {}, str(exc)[:200]
    text_rows = [r for r in inbox if r["kind"] == "text"]
    out.update(
        {
            "sent": len(replies),
            "replies": sum(1 for _, ok in replies if ok),
            "timeouts": result.timeouts,
            "errors": result.errors,
            "accepted": len(text_rows),
            "refused": len(refused),
            "lost": sum(1 for r in text_rows if r["msgid"] not in seen) + len(refused),
            "inbox_not_done": sum(1 for r in text_rows if r["status"] != "done"),
            "answered_twice": sum(1 for r in text_rows if seen.get(r["msgid"], 0) > 1),
            "pages": sum(pages.values()) - sum(pages_before.values()),
            # a page WeCom received more often than the outbox sent it (one row per step and
            # advisor): a step paged twice
            "pages_recorded": sum(recorded.values()),
            "pages_twice": sum(
                max(0, n - pages_before.get(k, 0) - recorded.get(k, 0)) for k, n in pages.items()
            ),
            # re-sends of a page that had arrived (a timeout, a killed worker), not delivered again
            "pages_kept_back": sum(kept.values()) - sum(kept_before.values()),
            # since the stack started (a fresh database): tracker events the stream lacks after the
            # drain (a per-run difference would count the consumer's backlog of the run before)
            "events_missing": events_end["tracker"] - events_end["stream"],
            "recovery_s": recovery_s(replies, out["t_fault"], t_end, args.before),
            "reply_p95_s": percentile(result.latencies, 95),
            "error_samples": result.error_samples[:3],
        }
    )
    out.pop("t_fault", None)
    return out


# ---- the scale rows ------------------------------------------------------------------------------


async def scale_run(stack: Stack, args, mix) -> Dict[str, Any]:
    from bench import profile

    async with load.WeComClient(stack.sandbox_url, timeout_s=args.timeout) as client:
        await load.warm_up(client, senders(4), ["你好", "早餐几点开始", "谢谢", "几点退房"])
        cpu0 = stack.cpu()
        recorders = {}
        if args.profile and profile.available():
            for name in (stack.rasa_names[0], stack.action_names[0]):
                out = stack.workdir / f"profile-{name}.txt"
                recorders[name] = (
                    profile.start_record(stack.procs[name].pid, out, args.warmup + args.duration),
                    out,
                )
        result = await load.closed_loop(
            client,
            senders(args.guests * 2),
            args.guests,
            args.duration,
            warmup_s=args.warmup,
            library=mix,
        )
        cpu1 = stack.cpu()
    row = {
        "replicas": stack.rasa_replicas,
        "guests": args.guests,
        "duration_s": args.duration,
        "replies": result.ok,
        "throughput": round(result.ok / args.duration, 2),
        "reply": latency_summary(result.latencies),
        "callback_ack": latency_summary(result.ack_latencies),
        "timeouts": result.timeouts,
        "errors": result.errors,
        "cpu_s": {k: round(cpu1.get(k, 0) - cpu0.get(k, 0), 1) for k in cpu1},
    }
    for name, (rec, out) in recorders.items():
        if rec is not None:
            rec.wait(timeout=args.warmup + args.duration + 60)
            cats = (
                profile.RASA_CATEGORIES if name.startswith("rasa") else profile.ACTIONS_CATEGORIES
            )
            summary = profile.summarize(out, cats)
            row.setdefault("profiles", {})[name] = summary
            print(
                profile.format_summary(f"profile {name} ({stack.rasa_replicas} replicas)", summary),
                flush=True,
            )
    return row


def fmt_scale(rows: List[Dict[str, Any]]) -> str:
    lines = [
        "replicas | replies/s | reply p50 | reply p95 | callback p99 | timeouts | CPU s per process",
        "---|---|---|---|---|---|---",
    ]

    def ms(v):
        return "-" if v is None else f"{v:.0f} ms"

    for r in rows:  # latency_summary is in milliseconds
        cpu = ", ".join(f"{k} {v}" for k, v in sorted(r["cpu_s"].items()))
        lines.append(
            f"{r['replicas']} | {r['throughput']} | {ms(r['reply'].get('p50'))} | "
            f"{ms(r['reply'].get('p95'))} | {ms(r['callback_ack'].get('p99'))} | "
            f"{r['timeouts']} | {cpu}"
        )
    return "\n".join(lines)


def fmt_faults(rows: List[Dict[str, Any]]) -> str:
    lines = [
        "fault | sent | accepted | lost | answered twice | "
        "pages sent / recorded (twice; re-sends kept back) | "
        "events missing | restart s | below half rate s | reply p95",
        "---|---|---|---|---|---|---|---|---|---",
    ]
    for r in rows:
        lines.append(
            f"{r['fault']} | {r['sent']} | {r['accepted']} | {r['lost']} | "
            f"{r['answered_twice']} | {r['pages']} / {r.get('pages_recorded')} "
            f"({r['pages_twice']}; {r.get('pages_kept_back', 0)}) | "
            f"{r['events_missing']} | {r['restart_s']} | {r['recovery_s']} | "
            f"{r['reply_p95_s'] and round(r['reply_p95_s'], 2)}"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--replicas", default="1,2", help="replica counts of the scale rows (1,2)")
    p.add_argument("--guests", type=int, default=50)
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds per scale row")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=60.0, help="per-message reply timeout, s")
    p.add_argument(
        "--faults",
        default=",".join(FAULTS),
        help=f"faults to inject with 2 replicas ({','.join(FAULTS)}; '' for none)",
    )
    p.add_argument("--before", type=float, default=10.0, help="load seconds before a fault")
    p.add_argument("--after", type=float, default=40.0, help="load seconds after a fault")
    p.add_argument("--profile", action="store_true", help="py-spy of the first Rasa and actions")
    p.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "concierge.tar.gz")
    p.add_argument("--start-timeout", type=float, default=600.0)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "bench-scale")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    mix = intent_mix()
    print(
        f"intent mix: {sum(len(v) for v in mix.values())} lines from {intents_covered()} "
        f"intents, {len(mix)} conversations",
        flush=True,
    )
    workdir = temp_workdir("bench-scale-")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = args.out / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = {"argv": sys.argv, "scale": [], "faults": []}
    counts = [int(x) for x in args.replicas.split(",") if x.strip()]
    faults = [f for f in args.faults.split(",") if f.strip()]
    for r in counts:
        stack = make_stack(r, args.model, workdir, args.start_timeout)
        try:
            stack.start(senders(args.guests * 2))
            results["scale"].append(asyncio.run(scale_run(stack, args, mix)))
            print(fmt_scale(results["scale"][-1:]), flush=True)
            if r == 2 and faults:
                for fault in faults:
                    row = asyncio.run(fault_run(stack, fault, args, mix))
                    results["faults"].append(row)
                    print(fmt_faults([row]), flush=True)
                    (outdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
        finally:
            stack.stop()
        (outdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print("\n" + fmt_scale(results["scale"]))
    if results["faults"]:
        print("\n" + fmt_faults(results["faults"]))
    print(f"\nresults: {outdir / 'results.json'}; logs: {workdir}")
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

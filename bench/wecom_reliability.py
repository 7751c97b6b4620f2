"""The WeCom connector's promises, as figures: callback answer time with many guests at once,
nothing answered twice when WeCom replays callbacks, nothing lost when Rasa is killed mid-load.

    python -m bench.wecom_reliability [--guests 50] [--duration 40] [--pg] [--phases load,replay,kill]
    make bench-wecom

One stack (the sandbox playing WeCom, the action server, `rasa run` started as the Procfile does,
the connector inside it); each phase has guests of its own:

- load: G guests write through 微信客服 at once; each sends its next line (bench.conversations)
  when the previous one was answered (closed loop: the bot is saturated). The callback answer
  time is the connector's HTTP 200 as the sandbox, sending the encrypted callback, timed it.
- replay: the same, plus a quarter of the guests in 智能机器人 group chats (@-mentions); the
  sandbox delivers every callback once and then the very same callback 3 more times, at once.
- kill: like load; a third of the way in, Rasa is SIGKILLed, then started again after a pause.
  Guests go on writing while it is down (WeCom keeps 微信客服 messages for sync_msg; the
  sandbox retries callbacks 3 times, then gives up, as WeCom does).

Then, once the connector is idle, every message the guests sent is looked up, by its WeCom msgid,
in Rasa's trackers (user events carry it as `message_id`) and in the connector's inbox/outbox:
- lost: never reached Rasa, or reached it and no reply was sent (an apology after every retry
  failed counts as answered, and is listed apart);
- processed twice: the msgid is in more than one user event of the tracker;
- answered twice: replies were sent for it from more than one inbox row.

This is a benchmark, not a test: it prints figures and writes JSON under results/bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import aiohttp

from bench.conversations import Guest, SenderPool
from bench.stack import AUTH_TOKEN, Stack, remove_workdir, temp_workdir
from bench.stats import latency_summary
from bot.settings import PROJECT_ROOT

log = logging.getLogger("bench")

REPLAYS = 3


@dataclass
class Sent:
    sender: str  # Rasa sender id
    surface: str  # kf | aibot
    msgid: Optional[str]
    text: str
    delivered: bool
    answer_ms: Optional[float]  # the first delivery's HTTP answer time (sandbox's clock)
    connector_ms: Optional[float]  # ... of which inside the connector's handler (its header)
    replay_ms: List[float] = field(default_factory=list)
    replay_status: List[Optional[int]] = field(default_factory=list)
    reply_s: Optional[float] = None


class FeedWatcher:
    """Polls the sandbox's chat feed; resolves the oldest waiter of a conversation on each bot message."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base
        self.since = 0
        self.waiters: Dict[str, List[asyncio.Future]] = defaultdict(list)
        self.task: Optional[asyncio.Task] = None

    async def start(self) -> None:
        async with self.http.get(f"{self.base}/_sandbox/feed") as resp:
            feed = (await resp.json())["feed"]
        self.since = max((f["seq"] for f in feed), default=0)
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def wait(self, key: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiters[key].append(fut)
        return fut

    async def _run(self) -> None:
        while True:
            try:
                async with self.http.get(
                    f"{self.base}/_sandbox/feed", params={"since": str(self.since)}
                ) as resp:
                    feed = (await resp.json())["feed"]
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError):
                await asyncio.sleep(0.2)
                continue
            for entry in feed:
                self.since = max(self.since, entry["seq"])
                if entry.get("from") != "bot":
                    continue
                pending = [f for f in self.waiters.get(str(entry.get("key")), []) if not f.done()]
                if pending:
                    pending[0].set_result(time.monotonic())
                self.waiters[str(entry.get("key"))] = pending[1:] if pending else []
            await asyncio.sleep(0.05)


class Driver:
    def __init__(self, stack: Stack, http: aiohttp.ClientSession, reply_timeout_s: float) -> None:
        self.stack, self.http, self.reply_timeout_s = stack, http, reply_timeout_s
        self.feed = FeedWatcher(http, stack.sandbox_url)
        self.sent: List[Sent] = []

    async def message(self, sender: str, surface: str, text: str, replays: int) -> Sent:
        base = self.stack.sandbox_url
        if surface == "kf":
            user = sender[3:]
            path, body, key = "/_sandbox/guest/kf", {"external_userid": user, "text": text}, user
        else:
            user = sender[len("wecom:") :]
            chatid = f"chat-{user}"
            path = "/_sandbox/guest/group"
            body, key = {"chatid": chatid, "userid": user, "text": f"@礼宾助手 {text}"}, chatid
        if replays:
            body["replays"] = replays
        waiter = self.feed.wait(key)
        t0 = time.monotonic()
        try:
            async with self.http.post(base + path, json=body) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("sandbox refused a guest message: %s", exc)
            data = {}
        delivery = (data or {}).get("delivery") or {}
        sent = Sent(
            sender,
            surface,
            (data or {}).get("msgid"),
            text,
            bool(delivery.get("delivered")),
            delivery.get("elapsed_ms") if delivery.get("delivered") else None,
            delivery.get("connector_ms") if delivery.get("delivered") else None,
            [r["elapsed_ms"] for r in delivery.get("replays", []) if r.get("status") == 200],
            [r.get("status") for r in delivery.get("replays", [])],
        )
        self.sent.append(sent)
        try:
            done = await asyncio.wait_for(waiter, timeout=self.reply_timeout_s)
            sent.reply_s = done - t0
        except asyncio.TimeoutError:
            pass  # unanswered for now: the check at the end says whether it ever was
        return sent


async def run_guests(
    driver: Driver,
    senders: Sequence[str],
    surfaces: Sequence[str],
    duration_s: float,
    replays: int,
    during: Optional[Any] = None,
) -> None:
    stop_at = time.monotonic() + duration_s

    async def guest_loop(i: int) -> None:
        guest = Guest(i, SenderPool([senders[i]]))
        while time.monotonic() < stop_at:
            text = guest.next_text()
            await driver.message(senders[i], surfaces[i], text, replays)

    tasks = [asyncio.create_task(guest_loop(i)) for i in range(len(senders))]
    if during is not None:
        tasks.append(asyncio.create_task(during))
    await asyncio.gather(*tasks)


async def wait_idle(stack: Stack, quiet_s: float = 3.0, limit_s: float = 240.0) -> float:
    """Until the connector has nothing pending (inbox, outbox) and the sandbox saw no call for quiet_s."""
    from sqlalchemy import create_engine, text

    engine = create_engine(stack.database_url, future=True)
    start = time.monotonic()
    quiet_since: Optional[float] = None
    last_seq = -1
    try:
        while time.monotonic() - start < limit_s:
            with engine.connect() as conn:
                pending = conn.execute(
                    text(
                        "SELECT count(*) FROM wecom_inbox WHERE status IN ('pending', 'processing')"
                    )
                ).scalar()
                sending = conn.execute(
                    text("SELECT count(*) FROM wecom_outbox WHERE status IN ('sending', 'retry')")
                ).scalar()
            async with aiohttp.ClientSession() as http:
                async with http.get(
                    f"{stack.sandbox_url}/_sandbox/calls", params={"since": str(max(last_seq, 0))}
                ) as r:
                    calls = (await r.json())["calls"]
            seq = max([c["seq"] for c in calls] + [last_seq])
            busy = pending or sending or seq != last_seq
            last_seq = seq
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return time.monotonic() - start
            await asyncio.sleep(0.5)
    finally:
        engine.dispose()
    log.warning("connector still busy after %.0f s", limit_s)
    return time.monotonic() - start


def _payload(stored: Any) -> Dict[str, Any]:
    """A wecom_inbox.payload as read with plain SQL: encrypted at rest (bot.crm.crypto, migration
    0011; the stack runs on the development key, as this process does), plain JSON in older rows."""
    from bot.crm.crypto import decrypt

    if not isinstance(stored, str):
        return stored or {}
    try:
        return json.loads(stored)
    except ValueError:
        return json.loads(decrypt(stored))


async def audit(stack: Stack, sent: Sequence[Sent]) -> Dict[str, Any]:
    """Every sent message: in Rasa's tracker? once? answered? from one inbox row?"""
    from sqlalchemy import create_engine, text

    seen: Counter = Counter()
    async with aiohttp.ClientSession() as http:
        for sender in sorted({s.sender for s in sent}):
            async with http.get(
                f"{stack.rasa_url}/conversations/{sender}/tracker",
                params={"token": AUTH_TOKEN, "include_events": "ALL"},
            ) as resp:
                tracker = await resp.json()
            for event in tracker.get("events") or []:
                if event.get("event") == "user" and event.get("message_id"):
                    seen[event["message_id"]] += 1
    engine = create_engine(stack.database_url, future=True)
    try:
        with engine.connect() as conn:
            inbox = conn.execute(text("SELECT id, payload, status FROM wecom_inbox")).all()
            outbox = conn.execute(text("SELECT dedupe_key, status FROM wecom_outbox")).all()
    finally:
        engine.dispose()
    rows_by_msgid: Dict[str, List[int]] = defaultdict(list)
    status_by_row: Dict[int, str] = {}
    for row_id, payload, status in inbox:
        payload = _payload(payload)
        if payload.get("msgid"):
            rows_by_msgid[str(payload["msgid"])].append(row_id)
        status_by_row[row_id] = status
    replied: Counter = Counter()  # inbox row -> replies sent for it (keys `reply:<row>:<n>`)
    apologised: set = set()  # inbox rows that got the "busy" apology (`failed:<row>:<n>`)
    for key, status in outbox:
        parts = str(key or "").split(":")
        if len(parts) < 2 or not parts[1].isdigit() or status != "sent":
            continue
        if parts[0] == "reply":
            replied[int(parts[1])] += 1
        elif parts[0] == "failed":
            apologised.add(int(parts[1]))
    lost, twice, answered_twice, unanswered, apologies, never_stored = [], [], [], [], [], []
    for s in sent:
        if not s.msgid:
            continue
        rows = rows_by_msgid.get(s.msgid, [])
        if not rows:
            never_stored.append(s.msgid)
        if seen[s.msgid] == 0 and not any(r in apologised for r in rows):
            lost.append(s.msgid)
        elif seen[s.msgid] > 1:
            twice.append(s.msgid)
        answering = [r for r in rows if replied[r]]
        if len(answering) > 1:
            answered_twice.append(s.msgid)
        if seen[s.msgid] and not answering:
            (apologies if any(r in apologised for r in rows) else unanswered).append(s.msgid)
    return {
        "messages_sent": len([s for s in sent if s.msgid]),
        "lost": len(lost) + len(unanswered),
        "lost_never_reached_rasa": len(lost),
        "lost_no_reply_sent": len(unanswered),
        "never_stored_in_inbox": len(never_stored),
        "processed_twice": len(twice),
        "answered_twice": len(answered_twice),
        "apologised_after_failures": len(apologies),
        "inbox_rows_failed": sum(1 for st in status_by_row.values() if st == "failed"),
        "examples": {
            "lost": (lost + unanswered)[:5],
            "processed_twice": twice[:5],
            "answered_twice": answered_twice[:5],
        },
    }


def callback_figures(sent: Sequence[Sent]) -> Dict[str, Any]:
    first = [s.answer_ms / 1000 for s in sent if s.answer_ms is not None]
    replays = [ms / 1000 for s in sent for ms in s.replay_ms]
    replies = [s.reply_s for s in sent if s.reply_s is not None]
    return {
        "callbacks": len(sent),
        "callbacks_not_acknowledged": sum(1 for s in sent if not s.delivered),
        "callback_answer_ms": latency_summary(first),
        "callback_handler_ms": latency_summary(
            [s.connector_ms / 1000 for s in sent if s.connector_ms is not None]
        ),
        "replayed_callbacks": sum(len(s.replay_status) for s in sent),
        "replayed_not_200": sum(1 for s in sent for st in s.replay_status if st != 200),
        "replay_answer_ms": latency_summary(replays) if replays else None,
        "reply_s": {
            k: (round(v / 1000, 3) if v is not None and k != "n" else v)
            for k, v in latency_summary(replies).items()
        },
        "replies_within_timeout": len(replies),
    }


async def phase(stack: Stack, name: str, guests: int, duration_s: float, args) -> Dict[str, Any]:
    if name == "replay":
        n_group = guests // 4
        senders = [f"kf:rel-{name}-{i:03d}" for i in range(guests - n_group)] + [
            f"wecom:rel-{name}-{i:03d}" for i in range(n_group)
        ]
        surfaces = ["kf"] * (guests - n_group) + ["aibot"] * n_group
    else:
        senders = [f"kf:rel-{name}-{i:03d}" for i in range(guests)]
        surfaces = ["kf"] * guests
    replays = REPLAYS if name == "replay" else 0
    events: Dict[str, Any] = {}

    async def kill_and_restart() -> None:
        await asyncio.sleep(duration_s / 3)
        events["killed_at_s"] = round(duration_s / 3, 1)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, stack.kill, "rasa")
        await asyncio.sleep(args.down_s)
        events["restart_s"] = await loop.run_in_executor(None, stack.restart, "rasa")

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as http:
        driver = Driver(stack, http, args.reply_timeout)
        await driver.feed.start()
        try:
            started = time.monotonic()
            await run_guests(
                driver,
                senders,
                surfaces,
                duration_s,
                replays,
                kill_and_restart() if name == "kill" else None,
            )
            events["load_s"] = round(time.monotonic() - started, 1)
            events["drain_s"] = round(await wait_idle(stack), 1)
        finally:
            await driver.feed.stop()
    figures = {
        "phase": name,
        "guests": guests,
        "duration_s": duration_s,
        **events,
        **callback_figures(driver.sent),
        **await audit(stack, driver.sent),
    }
    if name == "replay":
        figures["replays_per_callback"] = REPLAYS
        figures["group_guests"] = sum(1 for s in surfaces if s == "aibot")
    return figures


def ms(value: Optional[float]) -> str:
    return f"{value:.1f}" if value is not None else "-"


def print_summary(results: List[Dict[str, Any]], callbacks_to: str, stores: str) -> None:
    print(
        f"\nWeCom connector under load (bench.wecom_reliability): callbacks to {callbacks_to}; {stores}"
    )
    head = (
        f"{'phase':<8}{'guests':>7}{'msgs':>7}{'cb p50 ms':>11}{'cb p99 ms':>11}{'in handler p99':>15}{'not acked':>10}"
        f"{'reply p50 s':>12}{'lost':>6}{'twice':>7}{'ans.twice':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        cb = r["callback_answer_ms"]
        print(
            f"{r['phase']:<8}{r['guests']:>7}{r['messages_sent']:>7}{ms(cb.get('p50')):>11}{ms(cb.get('p99')):>11}"
            f"{ms(r['callback_handler_ms'].get('p99')):>15}"
            f"{r['callbacks_not_acknowledged']:>10}{str(r['reply_s'].get('p50')):>12}{r['lost']:>6}"
            f"{r['processed_twice']:>7}{r['answered_twice']:>10}"
        )
    for r in results:
        if r["phase"] == "replay":
            print(
                f"replay: {r['replayed_callbacks']} replayed callbacks ({r['replays_per_callback']} per message, "
                f"{r['group_guests']} group guests); answer p99 of replays "
                f"{ms((r['replay_answer_ms'] or {}).get('p99'))} ms"
            )
        if r["phase"] == "kill":
            print(
                f"kill: Rasa SIGKILLed at {r.get('killed_at_s')} s, up again {r.get('restart_s')} s after the "
                f"restart; {r['callbacks_not_acknowledged']} callbacks went unanswered meanwhile; drained in "
                f"{r.get('drain_s')} s"
            )


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.wecom_reliability", description=__doc__.split("\n")[0]
    )
    p.add_argument("--guests", type=int, default=50)
    p.add_argument("--duration", type=float, default=40.0, help="seconds of load per phase")
    p.add_argument("--phases", default="load,replay,kill")
    p.add_argument(
        "--pg",
        action="store_true",
        help="PostgreSQL + Redis instead of the embedded SQLite defaults",
    )
    p.add_argument(
        "--no-intake",
        action="store_true",
        help="callbacks to Rasa's own /webhooks/wecom routes instead of the intake server",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run Rasa and the action server at this niceness (the intake keeps 0)",
    )
    p.add_argument("--down-s", type=float, default=3.0, help="kill phase: seconds Rasa stays down")
    p.add_argument(
        "--reply-timeout",
        type=float,
        default=15.0,
        help="a guest writes again after this long unanswered",
    )
    p.add_argument("--model", default=str(PROJECT_ROOT / "models" / "concierge.tar.gz"))
    p.add_argument("--out", default=str(PROJECT_ROOT / "results" / "bench"))
    p.add_argument(
        "--keep", action="store_true", help="keep the stack's temp dir (logs, databases)"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = Path(args.model)
    if not model.exists():
        p.error(f"{model} not found: run `make train` first")
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    workdir = temp_workdir("bench-wecom-")
    stack = Stack(
        "ours",
        model,
        workdir,
        wecom=True,
        pg=args.pg,
        product_entry=True,
        intake=not args.no_intake,
        env_extra={"SANDBOX_CALLBACK_TIMEOUT_S": "5"},
        nice={"rasa": args.nice, "actions": args.nice} if args.nice else {},
    )
    senders = [f"kf:rel-{ph}-{i:03d}" for ph in phases for i in range(args.guests)] + [
        f"wecom:rel-replay-{i:03d}" for i in range(args.guests // 4)
    ]
    results: List[Dict[str, Any]] = []
    try:
        stack.start(senders)
        for name in phases:
            log.info("phase %s: %d guests for %.0f s", name, args.guests, args.duration)
            results.append(asyncio.run(phase(stack, name, args.guests, args.duration, args)))
    finally:
        stack.stop()
        remove_workdir(workdir, args.keep)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out / f"wecom-reliability-{stamp}.json"
    path.write_text(
        json.dumps(
            {
                "stack": "pg" if args.pg else "embedded",
                "callbacks_to": "rasa" if args.no_intake else "intake",
                "results": results,
            },
            ensure_ascii=False,
            indent=2,
        ),
        encoding="utf-8",
    )
    print_summary(
        results,
        "Rasa's own routes" if args.no_intake else "the intake server",
        "PostgreSQL + Redis" if args.pg else "SQLite, in-process stores",
    )
    print(f"\nwritten: {path}")
    bad = sum(r["lost"] + r["processed_twice"] + r["answered_twice"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

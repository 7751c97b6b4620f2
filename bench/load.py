"""Load drivers (aiohttp, one event loop): the REST channel and the WeCom path through the sandbox,
each run closed loop (saturation) or open loop (a fixed offered rate).

- Closed loop: G guests; each sends its next line when the reply to the previous one arrived.
  Throughput = replies completed inside the measurement window / window (a warm-up before the
  window is not counted). At the end every guest finishes its request in flight (no cancelled
  requests left behind for the next phase).
- Open loop: arrivals at a fixed rate (evenly spaced, jittered, seeded), each the next line of an idle guest;
  latency counts from the scheduled arrival, so a slow server cannot slow the offered load down
  (no coordinated omission). An arrival that finds no idle guest is counted as `skipped`.
- WeCom: a message is `POST /_sandbox/guest/kf`, which the sandbox turns into the encrypted
  kf_msg_or_event callback to the connector; the sandbox times the connector's HTTP 200 (the
  callback answer time, as WeCom would see it) and returns it with the delivery. The reply is the connector's kf/send_msg call to the sandbox,
  seen by polling `GET /_sandbox/calls` (timestamped by the sandbox at arrival).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import aiohttp

from bench.conversations import Guest, SenderPool
from bench.stats import RunResult

log = logging.getLogger("bench")


@dataclass
class Outcome:
    ok: bool
    latency: Optional[float] = None  # reply latency, s
    ack: Optional[float] = None  # WeCom callback answer, s
    error: Optional[str] = None
    timeout: bool = False
    empty: bool = False


class RestClient:
    """Rasa's REST channel: the reply is the body of the POST."""

    channel = "rest"

    def __init__(self, rasa_url: str, timeout_s: float = 30.0) -> None:
        self.url = f"{rasa_url}/webhooks/rest/webhook"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.session: Optional[aiohttp.ClientSession] = None

    async def __aenter__(self) -> "RestClient":
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=self.timeout
        )
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.session is not None
        await self.session.close()

    def sender_for(self, sender: str) -> str:
        return sender

    async def turn(self, sender: str, text: str, t0: Optional[float] = None) -> Outcome:
        assert self.session is not None
        t0 = time.monotonic() if t0 is None else t0
        try:
            async with self.session.post(
                self.url, json={"sender": sender, "message": text}
            ) as resp:
                body = await resp.text()
                if resp.status != 200:
                    return Outcome(False, error=f"HTTP {resp.status}: {body[:120]}")
                latency = time.monotonic() - t0
                try:
                    import json

                    replies = json.loads(body)
                except ValueError:
                    return Outcome(False, error=f"bad body: {body[:120]}")
                return Outcome(True, latency=latency, empty=not replies)
        except asyncio.TimeoutError:
            return Outcome(False, timeout=True, error="timeout")
        except aiohttp.ClientError as exc:
            return Outcome(False, error=f"{type(exc).__name__}: {exc}")


class WeComClient:
    """微信客服 through the sandbox. Sender ids in the pool are Rasa's (`kf:<external_userid>`)."""

    channel = "wecom"

    def __init__(self, sandbox_url: str, timeout_s: float = 30.0, poll_s: float = 0.05) -> None:
        self.base = sandbox_url
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.session: Optional[aiohttp.ClientSession] = None
        self._waiters: Dict[str, List[tuple]] = {}  # external_userid -> [(sent_wall, future)]
        self._since = 0
        self._poller: Optional[asyncio.Task] = None
        self.unmatched_replies = 0
        self.poll_errors = 0

    async def __aenter__(self) -> "WeComClient":
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        )
        async with self.session.get(f"{self.base}/_sandbox/calls", params={"since": "0"}) as resp:
            calls = (await resp.json())["calls"]
        self._since = max((c["seq"] for c in calls), default=0)
        await self.clear_calls()
        self._poller = asyncio.create_task(self._poll_forever())
        return self

    async def clear_calls(self) -> None:
        """Empty the sandbox's call log (its sequence numbers go on): every poll scans the whole
        log, which would otherwise grow through the run and cost the sandbox more and more CPU."""
        assert self.session is not None
        async with self.session.delete(f"{self.base}/_sandbox/calls") as resp:
            await resp.read()

    async def __aexit__(self, *exc) -> None:
        if self._poller:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
        assert self.session is not None
        await self.session.close()

    @staticmethod
    def external_userid(sender: str) -> str:
        return sender[3:] if sender.startswith("kf:") else sender

    async def _poll_forever(self) -> None:
        assert self.session is not None
        while True:
            try:
                async with self.session.get(
                    f"{self.base}/_sandbox/calls",
                    params={"since": str(self._since), "path": "/cgi-bin/kf/send_msg"},
                ) as resp:
                    calls = (await resp.json())["calls"]
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError):
                self.poll_errors += 1
                await asyncio.sleep(0.2)
                continue
            for call in calls:
                self._since = max(self._since, call["seq"])
                if call.get("errcode") not in (None, 0):
                    continue
                body = call.get("body") or {}
                self._match(str(body.get("touser") or ""), float(call["time"]))
            await asyncio.sleep(self.poll_s)

    def _match(self, user: str, at_wall: float) -> None:
        waiting = self._waiters.get(user) or []
        for i, (sent_wall, fut) in enumerate(waiting):
            if at_wall >= sent_wall and not fut.done():
                fut.set_result(at_wall)
                del waiting[i]
                return
        self.unmatched_replies += 1  # a second message of an earlier turn, or a late reply

    async def turn(self, sender: str, text: str, t0: Optional[float] = None) -> Outcome:
        assert self.session is not None
        user = self.external_userid(sender)
        mono0 = time.monotonic() if t0 is None else t0
        # Wall clock for matching against the sandbox's timestamps; shifted back by the time the
        # arrival already waited (open loop), so both latencies count from the arrival.
        wall0 = time.time() - (time.monotonic() - mono0)
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(user, []).append((wall0, fut))
        try:
            async with self.session.post(
                f"{self.base}/_sandbox/guest/kf", json={"external_userid": user, "text": text}
            ) as resp:
                body = await resp.json(content_type=None)
                ack = time.monotonic() - mono0
            delivery = (body or {}).get("delivery") or {}
            if (
                delivery.get("elapsed_ms") is not None
            ):  # the connector's own answer, timed by the sandbox
                ack = delivery["elapsed_ms"] / 1000.0
            if resp.status != 200 or not delivery.get("delivered"):
                self._drop(user, fut)
                return Outcome(
                    False,
                    ack=ack,
                    error=f"callback not delivered: HTTP {resp.status} {str(delivery)[:160]}",
                )
            if delivery.get("attempts", 1) > 1:
                log.debug("callback for %s needed %s attempts", user, delivery.get("attempts"))
            remaining = max(0.1, self.timeout_s - (time.monotonic() - mono0))
            try:
                at_wall = await asyncio.wait_for(asyncio.shield(fut), timeout=remaining)
            except asyncio.TimeoutError:
                self._drop(user, fut)
                return Outcome(False, ack=ack, timeout=True, error="no kf/send_msg reply in time")
            return Outcome(True, latency=max(0.0, at_wall - wall0), ack=ack)
        except asyncio.TimeoutError:
            self._drop(user, fut)
            return Outcome(False, timeout=True, error="timeout posting to the sandbox")
        except (aiohttp.ClientError, ValueError) as exc:
            self._drop(user, fut)
            return Outcome(False, error=f"{type(exc).__name__}: {exc}")

    def _drop(self, user: str, fut: asyncio.Future) -> None:
        waiting = self._waiters.get(user) or []
        self._waiters[user] = [(w, f) for (w, f) in waiting if f is not fut]
        if not fut.done():
            fut.cancel()


def _record(result: RunResult, outcome: Outcome, count_reply: bool = True) -> None:
    if outcome.ack is not None:
        result.ack_latencies.append(outcome.ack)
    if outcome.ok:
        result.ok += 1
        if count_reply and outcome.latency is not None:
            result.latencies.append(outcome.latency)
        if outcome.empty:
            result.empty += 1
    elif outcome.timeout:
        result.timeouts += 1
        if len(result.error_samples) < 10:
            result.error_samples.append(outcome.error or "timeout")
    else:
        result.record_error(outcome.error or "error")


async def warm_up(client, senders: Sequence[str], lines: Sequence[str]) -> int:
    """A few messages before measuring (first-call costs: jieba dictionary, TF graphs, pools)."""
    bad = 0
    for sender, text in zip(senders, lines):
        outcome = await client.turn(sender, text)
        bad += 0 if outcome.ok else 1
    return bad


async def closed_loop(
    client,
    senders: Sequence[str],
    guests: int,
    duration_s: float,
    warmup_s: float = 2.0,
    name: str = "saturation",
    library: Optional[Dict[str, List[str]]] = None,
    on_reply: Optional[Callable[[float, Outcome], None]] = None,
) -> RunResult:
    pool = SenderPool(senders)
    result = RunResult(name=name, mode="closed", duration_s=duration_s, guests=guests)
    start = time.monotonic()
    window = (start + warmup_s, start + warmup_s + duration_s)

    async def guest_loop(guest: Guest) -> None:
        while time.monotonic() < window[1]:
            text = guest.next_text()
            t0 = time.monotonic()
            outcome = await client.turn(guest.sender, text, t0)
            done = time.monotonic()
            if on_reply is not None:
                on_reply(done, outcome)
            if window[0] <= done <= window[1]:
                result.sent += 1
                _record(result, outcome)
        guest.done()

    await asyncio.gather(*(guest_loop(Guest(i, pool, library=library)) for i in range(guests)))
    result.notes["senders_without_booking"] = pool.extra
    return result


async def open_loop(
    client,
    senders: Sequence[str],
    rate: float,
    duration_s: float,
    max_guests: int,
    name: str = "fixed_rate",
    seed: int = 7,
) -> RunResult:
    """rate x duration arrivals spread over `duration_s`; each picks an idle guest (at most `max_guests`
    conversations at once); waits for the answers still in flight (up to the client timeout)."""
    rng = random.Random(seed)
    pool = SenderPool(senders)
    idle: List[Guest] = [Guest(i, pool) for i in range(max_guests)]
    result = RunResult(
        name=name,
        mode="open",
        duration_s=duration_s,
        offered_rate=round(rate, 2),
        guests=max_guests,
    )
    tasks: List[asyncio.Task] = []
    busy_peak = 0

    async def one(guest: Guest, text: str, t_arrival: float) -> None:
        outcome = await client.turn(guest.sender, text, t_arrival)
        _record(result, outcome)
        idle.append(guest)

    start = time.monotonic()
    n_arrivals = max(1, int(round(rate * duration_s)))
    # Evenly spaced with +-50% jitter: exactly rate x duration arrivals (a Poisson process over a
    # few seconds offers anything from half to twice the rate, which makes short runs useless).
    schedule = [start + (i + 0.5 + rng.uniform(-0.5, 0.5)) / rate for i in range(n_arrivals)]
    for t_next in schedule:
        delay = t_next - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        result.sent += 1
        if not idle:
            result.skipped += 1
            continue
        guest = idle.pop(0)
        text = guest.next_text()
        tasks.append(asyncio.create_task(one(guest, text, t_next)))
        busy_peak = max(busy_peak, max_guests - len(idle))
    if tasks:
        await asyncio.gather(*tasks)
    result.duration_s = duration_s
    result.notes["busy_guests_peak"] = busy_peak
    result.notes["senders_without_booking"] = pool.extra
    return result

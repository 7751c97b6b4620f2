"""Statistics of a benchmark run: percentiles, run summaries and the ours-vs-baseline table.

Pure functions on plain numbers (no I/O, no clock), so tests/bench/test_bench_stats.py can check
them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence


def percentile(values: Iterable[float], q: float) -> Optional[float]:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's
    default, "linear"); None for no values."""
    data = sorted(float(v) for v in values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def latency_summary(latencies_s: Sequence[float]) -> Dict[str, Optional[float]]:
    """p50/p95/p99/max/mean in milliseconds (None when there was no sample)."""
    ms = [v * 1000.0 for v in latencies_s]
    summary = {f"p{q}": percentile(ms, q) for q in (50, 95, 99)}
    summary["max"] = max(ms) if ms else None
    summary["mean"] = sum(ms) / len(ms) if ms else None
    summary["n"] = len(ms)
    return summary


@dataclass
class RunResult:
    """One load run against one stack (what the load drivers fill in)."""

    name: str  # "saturation", "fixed_rate", ...
    mode: str  # "closed" or "open"
    duration_s: float  # the measurement window
    offered_rate: Optional[float] = None  # msg/s (open loop only)
    guests: int = 0
    sent: int = 0
    ok: int = 0  # answered with HTTP 200 (and, for WeCom, a reply seen)
    errors: int = 0  # HTTP status other than 200, connection errors, bad bodies
    timeouts: int = 0
    empty: int = 0  # answered 200 but the bot said nothing (REST)
    skipped: int = 0  # open loop: no idle guest at an arrival (overload)
    latencies: List[float] = field(default_factory=list)  # reply latency, seconds
    ack_latencies: List[float] = field(default_factory=list)  # WeCom: callback answered (200)
    error_samples: List[str] = field(default_factory=list)
    notes: Dict[str, Any] = field(default_factory=dict)

    def record_error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(what[:300])

    @property
    def throughput(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def as_dict(self) -> Dict:
        out = {
            "name": self.name,
            "mode": self.mode,
            "duration_s": round(self.duration_s, 3),
            "offered_rate": self.offered_rate,
            "guests": self.guests,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "empty": self.empty,
            "skipped": self.skipped,
            "throughput": round(self.throughput, 2),
            "reply_ms": _rounded(latency_summary(self.latencies)),
            "error_samples": self.error_samples,
            **self.notes,
        }
        if self.ack_latencies:
            out["ack_ms"] = _rounded(latency_summary(self.ack_latencies))
        return out


def _rounded(d: Dict[str, Optional[float]]) -> Dict[str, Optional[float]]:
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in d.items()}


def ratio(ours: Optional[float], baseline: Optional[float]) -> Optional[float]:
    """ours / baseline, None when either is missing or the baseline is zero."""
    if ours is None or baseline is None or baseline == 0:
        return None
    return ours / baseline


@dataclass(frozen=True)
class Row:
    label: str
    ours: Optional[float]
    baseline: Optional[float]
    unit: str = ""
    better: str = "lower"  # "lower" or "higher": how to read the ratio

    @property
    def ratio(self) -> Optional[float]:
        return ratio(self.ours, self.baseline)

    @property
    def speedup(self) -> Optional[float]:
        """How many times better ours is (>1 = ours better), whichever direction is better."""
        r = self.ratio
        if r is None:
            return None
        if self.better == "higher":
            return r
        return (1.0 / r) if r else None


def _fmt(value: Optional[float], unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100 or float(value).is_integer():
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) < 1:
        text = f"{value:.3f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def format_table(
    rows: Sequence[Row], title: str = "", ours_name: str = "ours", baseline_name: str = "baseline"
) -> str:
    """A plain-text side-by-side table: label | ours | baseline | ours/baseline | better by."""
    header = ("metric", ours_name, baseline_name, "ours/base", "ours better by")
    body = []
    for row in rows:
        r, s = row.ratio, row.speedup
        body.append(
            (
                row.label,
                _fmt(row.ours, row.unit),
                _fmt(row.baseline, row.unit),
                "-" if r is None else f"{r:.2f}",
                "-" if s is None else f"{s:.1f}x",
            )
        )
    widths = [max(_width(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells) -> str:
        first = _pad(cells[0], widths[0])
        rest = "  ".join(_pad(c, w, right=True) for c, w in zip(cells[1:], widths[1:]))
        return f"{first}  {rest}"

    out = [title] if title else []
    out += [line(header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    out += [line(cells) for cells in body]
    return "\n".join(out)


def _width(text: str) -> int:
    """Display width: CJK characters take two columns in a terminal."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(0, width - _width(text))
    return gap + text if right else text + gap

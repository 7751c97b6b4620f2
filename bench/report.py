"""The side-by-side table (ours vs baseline, and the ratio), the JSON file and the PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.stats import Row, format_table


def _get(d: Optional[Dict], *path: str) -> Optional[float]:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d if isinstance(d, (int, float)) else None


def _run(stack: Optional[Dict], channel: str, name: str) -> Optional[Dict]:
    if not stack:
        return None
    return ((stack.get("runs") or {}).get(channel) or {}).get(name)


def _failures(run: Optional[Dict]) -> Optional[float]:
    if not run:
        return None
    return float(run.get("errors", 0) + run.get("timeouts", 0) + run.get("skipped", 0))


def _quantiles(label: str, ours, base, *qs: str, key: str = "reply_ms") -> List[Row]:
    """One row per quantile (`label` has a {q}), ours against the baseline, in ms."""
    return [Row(label.format(q=q), _get(ours, key, q), _get(base, key, q), "ms") for q in qs]


def comparison_rows(results: Dict[str, Any]) -> List[Row]:
    """The table's rows from the results JSON (so an old results file can be re-printed)."""
    ours, base = results.get("stacks", {}).get("ours"), results.get("stacks", {}).get("baseline")
    rows: List[Row] = []
    training = results.get("training", {})
    epochs = _get(training, "baseline", "epochs")
    label = "training time (full, no cache)" + (
        f"; baseline at {epochs:g} epochs" if epochs and epochs != 100 else ""
    )
    rows.append(
        Row(label, _get(training, "ours", "seconds"), _get(training, "baseline", "seconds"), "s")
    )
    for channel, title in (("rest", "REST"), ("wecom", "WeCom kf")):
        if not any(_run(s, channel, "saturation") for s in (ours, base)):
            continue
        o_sat, b_sat = _run(ours, channel, "saturation"), _run(base, channel, "saturation")
        o_fix, b_fix = _run(ours, channel, "fixed_rate"), _run(base, channel, "fixed_rate")
        rows.append(
            Row(
                f"{title}: throughput at saturation",
                _get(o_sat, "throughput"),
                _get(b_sat, "throughput"),
                "msg/s",
                better="higher",
            )
        )
        o_mix, b_mix = _run(ours, channel, "mix_saturation"), _run(base, channel, "mix_saturation")
        if o_mix or b_mix:
            rows.append(
                Row(
                    f"{title}: throughput on the intent mix",
                    _get(o_mix, "throughput"),
                    _get(b_mix, "throughput"),
                    "msg/s",
                    better="higher",
                )
            )
            rows += _quantiles(
                f"{title}: reply {{q}} on the intent mix", o_mix, b_mix, "p50", "p95"
            )
            if channel == "wecom":
                rows += _quantiles(
                    f"{title}: callback answer {{q}} on the intent mix",
                    o_mix,
                    b_mix,
                    "p99",
                    key="ack_ms",
                )
        rate = _get(o_fix, "offered_rate") or _get(b_fix, "offered_rate")
        at = f"@{rate:g}/s" if rate else "@fixed"
        rows += _quantiles(f"{title}: reply {{q}} {at}", o_fix, b_fix, "p50", "p95", "p99")
        rows += _quantiles(f"{title}: reply {{q}} at saturation", o_sat, b_sat, "p50", "p95", "p99")
        o_half, b_half = _run(ours, channel, "half_own_saturation"), b_fix
        if o_half:
            o_rate = _get(o_half, "offered_rate")
            rows.append(
                Row(
                    f"{title}: reply p95 @half own sat ({o_rate:g}/s vs {rate:g}/s)"
                    if o_rate and rate
                    else f"{title}: reply p95 @half own sat",
                    _get(o_half, "reply_ms", "p95"),
                    _get(b_half, "reply_ms", "p95"),
                    "ms",
                )
            )
        if channel == "wecom":
            for label, o_run, b_run in (("fixed rate", o_fix, b_fix), ("saturation", o_sat, b_sat)):
                rows += _quantiles(
                    f"{title}: callback answer {{q}} at {label}",
                    o_run,
                    b_run,
                    "p50",
                    "p99",
                    key="ack_ms",
                )
        rows.append(
            Row(f"{title}: errors+timeouts+skipped (sat)", _failures(o_sat), _failures(b_sat))
        )
        rows.append(
            Row(f"{title}: errors+timeouts+skipped (fixed)", _failures(o_fix), _failures(b_fix))
        )
    acc = results.get("accuracy") or {}
    for variant in ("simplified", "traditional"):
        for key, label in (
            ("macro_f1", "intent macro-F1"),
            ("complain_recall", "complain recall"),
            ("entity_f1", "entity F1"),
        ):
            o, b = _get(acc, "ours", variant, key), _get(acc, "baseline", variant, key)
            if o is not None or b is not None:
                rows.append(Row(f"holdout {label} ({variant})", o, b, better="higher"))
    for proc in ("rasa", "actions", "intake", "sandbox"):
        o, b = _get(ours, "memory", proc, "peak_rss_mb"), _get(base, "memory", proc, "peak_rss_mb")
        if o is not None or b is not None:
            rows.append(Row(f"peak RSS {proc} (with children)", o, b, "MB"))
    rows.append(
        Row(
            "rasa server start-up (model load)",
            _get(ours, "startup_s", "rasa"),
            _get(base, "startup_s", "rasa"),
            "s",
        )
    )
    return rows


def render(results: Dict[str, Any]) -> str:
    meta = results.get("meta", {})
    title = (
        f"make bench: ours (config.yml) vs baseline (configs/baseline/config.yml), "
        f"{meta.get('guests')} guests, {meta.get('duration_s')} s per run, "
        f"{meta.get('cpus')} CPUs, load avg at start {meta.get('loadavg_start')}"
        + (", PostgreSQL + Redis" if meta.get("pg") else ", SQLite + in-process")
        + (
            f", baseline trained {meta['baseline_epochs']} epochs (stock: 100)"
            if meta.get("baseline_epochs") not in (None, 100)
            else ""
        )
        + ("; our WeCom callbacks via the intake server" if meta.get("intake") else "")
    )
    return format_table(comparison_rows(results), title=title)


def write_json(results: Dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")


def write_chart(results: Dict[str, Any], path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # matplotlib comes with rasa; without it the JSON still has everything
        return None
    stacks = results.get("stacks", {})
    names = [n for n in ("baseline", "ours") if n in stacks]
    colors = {"baseline": "#999999", "ours": "#2a7ab9"}
    channels = [
        c for c in ("rest", "wecom") if any(_run(stacks[n], c, "saturation") for n in names)
    ]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))

    ax = axes[0]
    width = 0.38
    for i, name in enumerate(names):
        vals = [_get(_run(stacks[name], c, "saturation"), "throughput") or 0 for c in channels]
        ax.bar(
            [x + (i - (len(names) - 1) / 2) * width for x in range(len(channels))],
            vals,
            width,
            label=name,
            color=colors[name],
        )
    ax.set_xticks(range(len(channels)))
    ax.set_xticklabels([{"rest": "REST", "wecom": "WeCom kf"}[c] for c in channels])
    ax.set_ylabel("messages / s")
    ax.set_title("throughput at saturation")
    ax.legend()

    ax = axes[1]
    labels = [f"{c} {q}" for c in channels for q in ("p50", "p95", "p99")]
    for i, name in enumerate(names):
        vals = [
            _get(_run(stacks[name], c, "fixed_rate"), "reply_ms", q) or 0
            for c in channels
            for q in ("p50", "p95", "p99")
        ]
        ax.bar(
            [x + (i - (len(names) - 1) / 2) * width for x in range(len(labels))],
            vals,
            width,
            label=name,
            color=colors[name],
        )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title("reply latency at the fixed rate")
    ax.legend()

    ax = axes[2]
    procs = [
        p
        for p in ("rasa", "actions", "sandbox")
        if any(_get(stacks[n], "memory", p, "peak_rss_mb") for n in names)
    ]
    for i, name in enumerate(names):
        vals = [_get(stacks[name], "memory", p, "peak_rss_mb") or 0 for p in procs]
        ax.bar(
            [x + (i - (len(names) - 1) / 2) * width for x in range(len(procs))],
            vals,
            width,
            label=name,
            color=colors[name],
        )
    ax.set_xticks(range(len(procs)))
    ax.set_xticklabels(procs)
    ax.set_ylabel("MB")
    ax.set_title("peak RSS")
    ax.legend()

    meta = results.get("meta", {})
    fig.suptitle(
        f"concierge bench {meta.get('started')} - {meta.get('guests')} guests, "
        f"{meta.get('duration_s')} s/run, {meta.get('cpus')} CPUs",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

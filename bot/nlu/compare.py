"""Pipeline comparison harness: which NLU pipeline to ship, by evidence.

    python -m bot.nlu.compare [--only diet,logreg] [--work results/compare] [--skip-train]
                              [--sweep-for logreg] [--holdout tests/nlu_holdout/holdout.yml]

For every candidate config in ``configs/pipelines/*.yml`` it trains an NLU-only model with
``rasa train nlu`` (into ``<work>/models/``; ``models/`` is never touched), with a private, disabled
Rasa training cache so that every training time is a cold one, then evaluates it on the held-out
set, as written and converted to traditional characters, with the code of ``bot.nlu.evaluate``.

It prints two tables:

1. every pipeline at the fallback thresholds in its config (all candidates use the same ones as
   config.yml), with training time and prediction time per message;
2. every pipeline at the fallback thresholds that suit *its* confidences best (the sweep of
   ``bot.nlu.evaluate``: highest out-of-scope recall with false-fallback <= 3%), since DIET and
   logistic regression spread their confidences very differently and one threshold pair does not
   fit both.

then the full threshold sweep and confidence histogram of the pipeline named by ``--sweep-for``.
``<work>/compare.json`` and ``<work>/compare.md`` (the tables in Markdown, for docs/NLU.md) are
written too. Training time is the wall time of the ``rasa train nlu`` process, including about
10 s of Python/Rasa/TensorFlow start-up.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from bot.nlu import evaluate as ev

DEFAULT_CONFIGS = "configs/pipelines"
DEFAULT_WORK = "results/compare"
TRAIN_TIMEOUT_S = 1800


def candidate_configs(folder: str, only: Optional[Sequence[str]] = None) -> List[Path]:
    paths = sorted(Path(folder).glob("*.yml"))
    if only:
        wanted = set(only)
        paths = [p for p in paths if p.stem in wanted]
        missing = wanted - {p.stem for p in paths}
        if missing:
            raise SystemExit(f"no such candidate in {folder}: {', '.join(sorted(missing))}")
    if not paths:
        raise SystemExit(f"no candidate configs in {folder}")
    return paths


def config_thresholds(path: Path) -> Optional[tuple]:
    cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for comp in cfg.get("pipeline") or []:
        if comp.get("name") == "FallbackClassifier":
            return float(comp.get("threshold", 0.3)), float(comp.get("ambiguity_threshold", 0.1))
    return None


def train(config: Path, nlu_data: str, work: Path) -> Dict[str, Any]:
    """``rasa train nlu`` in a child process; returns the model path and the wall time."""
    name = config.stem
    models = work / "models"
    models.mkdir(parents=True, exist_ok=True)
    cache = work / f"cache-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(
        os.environ,
        RASA_TELEMETRY_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="3",
        RASA_CACHE_DIRECTORY=str(cache),
        RASA_MAX_CACHE_SIZE="0",
    )
    cmd = [
        sys.executable,
        "-m",
        "rasa",
        "train",
        "nlu",
        "-c",
        str(config),
        "--nlu",
        nlu_data,
        "--out",
        str(models),
        "--fixed-model-name",
        name,
    ]
    log = work / f"{name}.train.log"
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=TRAIN_TIMEOUT_S
        )
    seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    shutil.rmtree(cache, ignore_errors=True)
    model = models / f"{name}.tar.gz"
    if proc.returncode != 0 or not model.exists():
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"training {name} failed (exit {proc.returncode}); see {log}\n{tail}")
    return {
        "model": str(model),
        "train_seconds": seconds,
        "train_cpu_seconds": cpu,
        "load_average": os.getloadavg()[0],
    }


def rethreshold(
    preds: Sequence[ev.Prediction], threshold: float, ambiguity: float
) -> List[ev.Prediction]:
    """The same classifier outputs with another FallbackClassifier setting."""
    return [
        ev.Prediction(
            ev.decide(p.ranking, threshold, ambiguity),
            p.confidence,
            p.ranking,
            p.entities,
            p.text,
            p.ms,
        )
        for p in preds
    ]


def evaluate_candidate(
    model: str, examples: List[ev.Example], synonyms: Dict[str, str]
) -> Dict[str, Any]:
    e5 = sys.modules.get("bot.nlu.e5_featurizer")
    if e5 is not None:  # vectors cached by an earlier candidate would make this one look fast
        e5.clear_cache()
    agent = ev.load_agent(model)
    res = ev.evaluate_model(agent, examples, synonyms, traditional=True)
    del agent
    gc.collect()
    golds = [e.intent for e in examples]
    sweep = ev.sweep_thresholds(golds, [p.ranking for p in res["_preds"]])
    out = {
        "configured": {"simplified": res["simplified"], "traditional": res["traditional"]},
        "sweep": sweep,
        "_preds": res["_preds"],
    }
    best = sweep["best"]
    if best:
        t, a = best["threshold"], best["ambiguity_threshold"]
        out["tuned"] = {
            "threshold": t,
            "ambiguity_threshold": a,
            "simplified": ev.summarize(
                examples, rethreshold(res["_preds"], t, a), synonyms=synonyms
            ),
            "traditional": ev.summarize(
                res["_trad_examples"], rethreshold(res["_trad_preds"], t, a), synonyms=synonyms
            ),
        }
    return out


def _row(
    name: str,
    training: Dict[str, Any],
    s: Dict[str, Any],
    t: Dict[str, Any],
    thresholds: Optional[tuple] = None,
) -> Dict[str, Any]:
    return {
        "pipeline": name,
        "thresholds": thresholds,
        "train_s": training.get("train_seconds"),
        "train_cpu_s": training.get("train_cpu_seconds"),
        "macro_f1": s["macro_f1"],
        "complain_recall": s["complain_recall"],
        "oos_recall": s["oos_recall"],
        "false_fallback": s["false_fallback_rate"],
        "entity_f1": s["entity_f1"],
        "trad_macro_f1": t["macro_f1"],
        "ms_per_message": s["ms_per_message"]["p50"],
        "classifier_macro_f1": s["classifier_only"]["macro_f1"],
    }


COLUMNS = [
    ("pipeline", "pipeline", "{}"),
    ("thresholds", "fallback t/amb", None),
    ("train_s", "train s", "{:.0f}"),
    ("macro_f1", "macro-F1", "{:.3f}"),
    ("complain_recall", "complain R", "{:.3f}"),
    ("oos_recall", "OOS R", "{:.3f}"),
    ("false_fallback", "false-fb", "{:.1%}"),
    ("entity_f1", "entity F1", "{:.3f}"),
    ("trad_macro_f1", "trad. macro-F1", "{:.3f}"),
    ("ms_per_message", "ms/msg p50", "{:.1f}"),
    ("classifier_macro_f1", "F1 no fallback", "{:.3f}"),
]


def _cell(row: Dict[str, Any], key: str, fmt: Optional[str]) -> str:
    v = row.get(key)
    if v is None:
        return "n/a"
    if key == "thresholds":
        return f"{v[0]:.2f}/{v[1]:.2f}"
    if key == "train_s" and row.get("train_cpu_s") is not None:
        return f"{v:.0f} ({row['train_cpu_s']:.0f})"
    return fmt.format(v)


def format_table(rows: List[Dict[str, Any]], markdown: bool = False) -> str:
    heads = [h for _, h, _ in COLUMNS]
    cells = [[_cell(r, k, f) for k, _, f in COLUMNS] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    fmt = lambda vals: "  ".join(
        v.ljust(w) if i == 0 else v.rjust(w)  # noqa: E731
        for i, (v, w) in enumerate(zip(vals, widths))
    )
    return "\n".join(
        [fmt(heads), "-" * (sum(widths) + 2 * (len(widths) - 1))] + [fmt(c) for c in cells]
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bot.nlu.compare", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help="folder of candidate configs")
    ap.add_argument("--only", help="comma-separated candidate names (file stems)")
    ap.add_argument("--nlu-data", default=ev.DEFAULT_NLU_DATA)
    ap.add_argument("--holdout", default=ev.DEFAULT_HOLDOUT)
    ap.add_argument("--work", default=DEFAULT_WORK, help="models, logs and results (never models/)")
    ap.add_argument("--skip-train", action="store_true", help="reuse <work>/models/<name>.tar.gz")
    ap.add_argument(
        "--sweep-for", default="logreg", help="print the full threshold sweep of this one"
    )
    args = ap.parse_args(argv)
    import warnings

    warnings.showwarning = lambda *a, **k: None
    ev.quiet_rasa()

    work = Path(args.work).resolve()
    if work == (Path("models").resolve()) or Path("models").resolve() in work.parents:
        raise SystemExit("--work must not be models/ (the served model lives there)")
    work.mkdir(parents=True, exist_ok=True)
    configs = candidate_configs(args.configs, args.only.split(",") if args.only else None)
    examples = ev.load_examples(args.holdout)
    synonyms = ev.load_synonyms(args.nlu_data)
    fingerprint = ev.data_fingerprint(
        args.nlu_data, "data/jieba", args.holdout, "bot/nlu/normalizer.py"
    )
    head = ev.git_head()
    print(
        f"{len(configs)} candidates, holdout {args.holdout}: {len(examples)} messages; "
        f"data {fingerprint} at commit {head}",
        flush=True,
    )

    prev_path = work / "compare.json"
    previous: Dict[str, Any] = {}
    if prev_path.exists():
        try:
            previous = json.loads(prev_path.read_text(encoding="utf-8"))
        except ValueError:
            previous = {}

    results: Dict[str, Any] = {}
    for cfg in configs:
        name = cfg.stem
        model = work / "models" / f"{name}.tar.gz"
        training: Dict[str, Any] = {}
        try:
            if args.skip_train and model.exists():
                print(f"[{name}] reusing {model}", flush=True)
                training = previous.get(name, {}).get("training", {})
            else:
                print(f"[{name}] training ...", flush=True)
                training = train(cfg, args.nlu_data, work)
                print(
                    f"[{name}] trained in {training['train_seconds']:.0f} s wall, "
                    f"{training['train_cpu_seconds']:.0f} s CPU (load average "
                    f"{training['load_average']:.1f})",
                    flush=True,
                )
            print(f"[{name}] evaluating ...", flush=True)
            r = evaluate_candidate(str(model), examples, synonyms)
            ev.write_predictions(
                work / f"{name}.predictions.jsonl", examples, r["_preds"], "simplified"
            )
        except Exception as exc:  # one broken candidate must not hide the others
            print(f"[{name}] FAILED: {exc}", flush=True)
            results[name] = {"error": str(exc)}
            continue
        r["training"] = training
        r["data_fingerprint"] = fingerprint
        r["git_head"] = head
        r["config_thresholds"] = config_thresholds(cfg)
        r["row_configured"] = _row(
            name,
            training,
            r["configured"]["simplified"],
            r["configured"]["traditional"],
            r["config_thresholds"],
        )
        if r.get("tuned"):
            r["row_tuned"] = _row(
                name,
                training,
                r["tuned"]["simplified"],
                r["tuned"]["traditional"],
                (r["tuned"]["threshold"], r["tuned"]["ambiguity_threshold"]),
            )
        results[name] = r

    ok = {n: r for n, r in results.items() if "error" not in r}
    rows_cfg = [r["row_configured"] for r in ok.values()]
    rows_tuned = [r["row_tuned"] for r in ok.values() if r.get("row_tuned")]
    print()
    print("== At the fallback thresholds in each config ==")
    print(format_table(rows_cfg))
    print()
    print("== At each pipeline's own best thresholds (max OOS recall, false-fallback <= 3%) ==")
    print(format_table(rows_tuned))
    print()
    print(
        "train s = wall time of `rasa train nlu` (CPU seconds in brackets; the machine is shared)."
    )
    print(
        "Targets: macro-F1 >= 0.95, complain recall >= 0.97, OOS recall >= 0.90 with false-fallback"
        " <= 3%, entity F1 >= 0.90, traditional within 0.02 of simplified."
    )
    chosen = ok.get(args.sweep_for)
    if chosen:
        print()
        print(f"== {args.sweep_for}: confidence histogram and threshold sweep ==")
        print(ev.format_histogram(chosen["configured"]["simplified"]["confidence_histogram"]))
        print(ev.format_sweep(chosen["sweep"], chosen["config_thresholds"]))
        if chosen.get("tuned"):
            print()
            print(
                ev.format_report(
                    chosen["tuned"]["simplified"],
                    chosen["tuned"]["traditional"],
                    title=f"{args.sweep_for} at its best thresholds",
                )
            )

    # compare.json accumulates over runs (e.g. --only diet after a full run)
    dump = dict(previous)
    for n, r in results.items():
        dump[n] = {k: v for k, v in r.items() if not k.startswith("_")}
        if "sweep" in dump[n]:
            dump[n]["sweep"] = {
                "best": r["sweep"]["best"],
                "max_false_fallback": r["sweep"]["max_false_fallback"],
            }
    prev_path.write_text(
        json.dumps(dump, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    # only rows measured on the same data as this run go into the Markdown tables
    same = {n: v for n, v in dump.items() if v.get("data_fingerprint") == fingerprint}
    stale = sorted(set(dump) - set(same))
    all_cfg = [v["row_configured"] for v in same.values() if v.get("row_configured")]
    all_tuned = [v["row_tuned"] for v in same.values() if v.get("row_tuned")]
    md = [
        f"Data {fingerprint} (training data, jieba dictionary, holdout, normaliser) at commit {head}.",
        "",
        "### At the fallback thresholds in each config",
        "",
        format_table(all_cfg, markdown=True),
        "",
        "### At each pipeline's own best thresholds",
        "",
        format_table(all_tuned, markdown=True),
        "",
    ]
    if stale:
        md.append(f"Not shown (measured on other data, re-run them): {', '.join(stale)}")
    (work / "compare.md").write_text("\n".join(md), encoding="utf-8")
    print(f"\nWritten: {prev_path}, {work / 'compare.md'} (all candidates evaluated so far)")
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())

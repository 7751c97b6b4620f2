"""Training for the benchmark: the baseline model (Rasa's stock config for Chinese,
configs/baseline/config.yml, on the same domain.yml and data) and the timing of a full training of
each configuration.

Timings are of a *full* training: Rasa's training cache is pointed at an empty temp dir, so no
component is reused from an earlier run. They are remembered in models/baseline/timings.json
together with a hash of what was trained and the load average when it started, and measured again
when that hash changes, when it was taken on a busier machine than the current one, or with
--retrain: a fresh clone pays for both trainings once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from bench.stack import RASA
from bot.settings import PROJECT_ROOT

log = logging.getLogger("bench")

RASA_DATA = ["data/nlu", "data/rules", "data/stories"]
BASELINE_CONFIG = PROJECT_ROOT / "configs" / "baseline" / "config.yml"
OURS_CONFIG = PROJECT_ROOT / "config.yml"
BASELINE_DIR = PROJECT_ROOT / "models" / "baseline"
BASELINE_MODEL = BASELINE_DIR / "baseline.tar.gz"
OURS_MODEL = PROJECT_ROOT / "models" / "concierge.tar.gz"
TIMINGS = BASELINE_DIR / "timings.json"


def training_inputs(config: Path) -> List[Path]:
    """Everything a training of `config` depends on (the Makefile's TRAIN_INPUTS, for any config)."""
    files = [config, PROJECT_ROOT / "domain.yml"]
    for folder in RASA_DATA + ["data/jieba"]:
        root = PROJECT_ROOT / folder
        if root.exists():
            files += sorted(p for p in root.rglob("*") if p.is_file())
    text = config.read_text(encoding="utf-8")
    if "bot.nlu." in text:  # custom components are part of the model
        files += sorted((PROJECT_ROOT / "bot" / "nlu").glob("*.py"))
    return files


def inputs_hash(config: Path) -> str:
    h = hashlib.sha256()
    for path in training_inputs(config):
        h.update(str(path.relative_to(PROJECT_ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _load_timings() -> Dict[str, Dict]:
    try:
        return json.loads(TIMINGS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_timing(name: str, record: Dict) -> None:
    timings = _load_timings()
    timings[name] = record
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS.write_text(json.dumps(timings, indent=2, ensure_ascii=False), encoding="utf-8")


def _loadavg() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def measured_busy(record: Optional[Dict]) -> bool:
    """A timing taken while the machine was busier than now (load average above the CPU count
    then, not now) is measured again rather than reused."""
    if not record:
        return False
    cpus = record.get("cpus") or os.cpu_count() or 1
    now = _loadavg()
    return (record.get("loadavg_before") or 0) > cpus and now is not None and now <= cpus


def timed_train(config: Path, out_dir: Path, name: str, logfile: Path) -> float:
    """`rasa train` of `config` into out_dir/name.tar.gz with an empty cache; returns seconds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="bench-rasa-cache-"))
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "RASA_CACHE_DIRECTORY": str(cache),
    }
    args = [
        RASA,
        "train",
        "--config",
        str(config),
        "--domain",
        str(PROJECT_ROOT / "domain.yml"),
        "--data",
        *RASA_DATA,
        "--out",
        str(out_dir),
        "--fixed-model-name",
        name,
    ]
    log.info("training %s (%s) -> %s/%s.tar.gz; log %s", name, config, out_dir, name, logfile)
    started = time.monotonic()
    try:
        with logfile.open("w") as fh:
            proc = subprocess.run(
                args, cwd=PROJECT_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT
            )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"rasa train {name} failed (exit {proc.returncode}):\n"
            f"{logfile.read_text(errors='replace')[-3000:]}"
        )
    return seconds


def baseline_config(epochs: Optional[int]) -> Path:
    """The stock config, or a copy with every `epochs: 100` set to `epochs` (same components and
    model sizes; training time, accuracy and, through the dialogue paths taken, serving differ)."""
    if not epochs:
        return BASELINE_CONFIG
    text = BASELINE_CONFIG.read_text(encoding="utf-8").replace(
        "epochs: 100", f"epochs: {int(epochs)}"
    )
    path = BASELINE_DIR / f"config-e{int(epochs)}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# generated by bench/train.py from configs/baseline/config.yml, {int(epochs)} epochs\n"
        + text,
        encoding="utf-8",
    )
    return path


def baseline_model(epochs: Optional[int]) -> Path:
    return BASELINE_MODEL if not epochs else BASELINE_DIR / f"baseline-e{int(epochs)}.tar.gz"


def ensure_baseline(logdir: Path, retrain: bool = False, epochs: Optional[int] = None) -> Dict:
    """Train the baseline model if it is missing or its inputs changed; its training time.
    `epochs`: train the stock components for that many epochs instead of 100 (make bench's
    default, so a fresh clone fits in 10 minutes)."""
    config = baseline_config(epochs)
    model = baseline_model(epochs)
    key = "baseline" if not epochs else f"baseline-e{int(epochs)}"
    digest = inputs_hash(config)
    record = _load_timings().get(key)
    if (
        model.exists()
        and record
        and record.get("hash") == digest
        and not retrain
        and not measured_busy(record)
    ):
        return {**record, "reused": True}
    if not epochs:
        log.warning(
            "training the baseline (stock config: DIET, TED and UnexpecTED at 100 epochs each): on 2 "
            "cores this takes well over 10 minutes; it is done once and kept in %s",
            BASELINE_DIR,
        )
    load_before = _loadavg()
    seconds = timed_train(
        config, BASELINE_DIR, model.name[: -len(".tar.gz")], logdir / f"train-{key}.log"
    )
    record = {
        "seconds": round(seconds, 1),
        "hash": digest,
        "config": str(config.relative_to(PROJECT_ROOT)),
        "epochs": int(epochs) if epochs else 100,
        "loadavg_after": _loadavg(),
        "when": dt.datetime.now().isoformat(timespec="seconds"),
        "loadavg_before": load_before,
        "cpus": os.cpu_count(),
    }
    _save_timing(key, record)
    return {**record, "reused": False}


def time_ours(logdir: Path, retrain: bool = False) -> Dict:
    """How long a full training of our config.yml takes (into a temp dir: models/concierge.tar.gz
    is `make train`'s). Measured again only when the inputs changed."""
    digest = inputs_hash(OURS_CONFIG)
    record = _load_timings().get("ours")
    if record and record.get("hash") == digest and not retrain and not measured_busy(record):
        return {**record, "reused": True}
    out = Path(tempfile.mkdtemp(prefix="bench-train-ours-"))
    load_before = _loadavg()
    try:
        seconds = timed_train(OURS_CONFIG, out, "ours", logdir / "train-ours.log")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    record = {
        "seconds": round(seconds, 1),
        "hash": digest,
        "config": "config.yml",
        "loadavg_after": _loadavg(),
        "when": dt.datetime.now().isoformat(timespec="seconds"),
        "loadavg_before": load_before,
        "cpus": os.cpu_count(),
    }
    _save_timing("ours", record)
    return {**record, "reused": False}


def record_ours(started_epoch_s: float, cold: bool) -> Optional[Dict]:
    """`make train` just trained models/concierge.tar.gz: keep its time as the full-training time
    of our config if Rasa's cache was empty (a fresh clone), so `make bench` need not train again."""
    if not cold:
        return None
    seconds = time.time() - started_epoch_s
    record = {
        "seconds": round(seconds, 1),
        "hash": inputs_hash(OURS_CONFIG),
        "config": "config.yml",
        "measured_by": "make train (empty Rasa cache)",
        "loadavg_after": _loadavg(),
        "when": dt.datetime.now().isoformat(timespec="seconds"),
        "loadavg_before": None,
        "cpus": os.cpu_count(),
    }
    _save_timing("ours", record)
    return record


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.train")
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record-ours", help="keep the time of the training `make train` just did")
    rec.add_argument(
        "--started", type=float, required=True, help="epoch seconds when rasa train started"
    )
    rec.add_argument("--cold", choices=("yes", "no"), required=True, help="was Rasa's cache empty?")
    args = p.parse_args(argv)
    record = record_ours(args.started, args.cold == "yes")
    if record:
        print(
            f"training took {record['seconds']} s (full: Rasa's cache was empty); kept in {TIMINGS}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Trains and evaluates one queued model version: `python -m bot.training.trainer VERSION`.

Started in the background by `concierge model train` (bot.training.registry.spawn_training), or in
the foreground with `concierge model train --wait`. Steps, each recorded on the version's row:
1. take the training lock (one training at a time on this machine: 2 CPU cores);
2. snapshot the training inputs into a temporary folder, so a label written meanwhile does not
   end up half in this version, and hash the snapshot (the version's data hash);
3. `rasa train` on the snapshot into MODEL_REGISTRY_DIR/VERSION.tar.gz (Rasa's cache under
   .rasa/cache is shared with `make train`, so unchanged parts are not retrained);
4. `python -m bot.nlu.evaluate` on the held-out set (the `make eval` figures), kept in the row.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from bot.training.gate import key_figures
from bot.training.registry import (
    TRAINING_INPUTS,
    ModelRegistry,
    RegistryError,
    data_hash,
    model_fingerprint,
)

HOLDOUT = Path("tests/nlu_holdout/holdout.yml")
LOG_TAIL = 2000


@contextmanager
def training_lock(registry_dir: Path) -> Iterator[None]:
    registry_dir.mkdir(parents=True, exist_ok=True)
    with open(registry_dir / ".train.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
        )
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL:]
        raise RegistryError(
            f"{cmd[2]} {cmd[3] if len(cmd) > 3 else ''} exited " f"{proc.returncode}:\n{tail}"
        )


def snapshot(root: Path, into: Path) -> None:
    for rel in TRAINING_INPUTS:
        src, dst = root / rel, into / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".*"))
        elif src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def evaluate(
    model: Path, out_dir: Path, root: Path, log: Path, nlu_data: Optional[Path] = None
) -> dict:
    """The held-out figures of one model archive (bot.nlu.evaluate's summary, trimmed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "bot.nlu.evaluate",
        "--model",
        str(model),
        "--out",
        str(out_dir),
        "--holdout",
        str(root / HOLDOUT),
        "--no-rasa-report",
    ]
    if nlu_data is not None:
        cmd += ["--nlu-data", str(nlu_data)]
    _run(cmd, root, log)
    return key_figures(json.loads((out_dir / "summary.json").read_text(encoding="utf-8")))


def train_version(registry: ModelRegistry, version: str) -> dict:
    """Train and evaluate `version`; its row ends `ready` (with figures) or `failed` (with the
    error). Returns the row."""
    root, out = registry.root, registry.dir
    log = out / f"{version}.log"
    try:
        with training_lock(out):
            row = registry.get(version)
            if row["status"] == "evaluating" and row["path"]:  # an imported archive
                t0 = time.monotonic()
                figures = evaluate(Path(row["path"]), out / f"{version}-eval", root, log)
                registry.update(
                    version,
                    status="ready",
                    figures=figures,
                    eval_seconds=round(time.monotonic() - t0, 1),
                )
                return registry.get(version)
            with tempfile.TemporaryDirectory(prefix="concierge-train-") as tmp:
                snap = Path(tmp)
                snapshot(root, snap)
                config = (snap / "config.yml").read_text(encoding="utf-8")
                registry.update(
                    version, status="training", data_hash=data_hash(snap), config=config
                )
                t0 = time.monotonic()
                _run(
                    [
                        sys.executable,
                        "-m",
                        "bot.rasa_main",
                        "train",
                        "--data",
                        str(snap / "data/nlu"),
                        str(snap / "data/rules"),
                        str(snap / "data/stories"),
                        "--domain",
                        str(snap / "domain.yml"),
                        "--config",
                        str(snap / "config.yml"),
                        "--out",
                        str(out),
                        "--fixed-model-name",
                        version,
                    ],
                    root,
                    log,
                )
                train_s = time.monotonic() - t0
                model = out / f"{version}.tar.gz"
                registry.update(
                    version,
                    status="evaluating",
                    path=str(model),
                    fingerprint=model_fingerprint(model),
                    train_seconds=round(train_s, 1),
                )
                t0 = time.monotonic()
                figures = evaluate(
                    model, out / f"{version}-eval", root, log, nlu_data=snap / "data/nlu"
                )
                registry.update(
                    version,
                    status="ready",
                    figures=figures,
                    eval_seconds=round(time.monotonic() - t0, 1),
                )
    except Exception as exc:
        registry.update(version, status="failed", error=str(exc)[-LOG_TAIL:])
    return registry.get(version)


def main(argv: Optional[list[str]] = None) -> int:
    from bot.crm.store import CRMStore
    from bot.settings import PROJECT_ROOT, get_settings

    ap = argparse.ArgumentParser(prog="python -m bot.training.trainer")
    ap.add_argument("version")
    ap.add_argument("--root", default=str(PROJECT_ROOT), help="project with the training data")
    args = ap.parse_args(argv)
    settings = get_settings()
    store = CRMStore(settings.database_url)
    try:
        registry = ModelRegistry(
            store.engine, store, settings.training.registry_dir, Path(args.root)
        )
        row = train_version(registry, args.version)
    finally:
        store.close()
    print(json.dumps({k: row[k] for k in ("version", "status", "error")}, ensure_ascii=False))
    return 0 if row["status"] == "ready" else 1


if __name__ == "__main__":
    sys.exit(main())

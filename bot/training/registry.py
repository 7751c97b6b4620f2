"""The model registry: every trained version with what it was trained from and how it scored.

A version is a model archive under MODEL_REGISTRY_DIR plus a `model_versions` row: its data hash
(the training data, domain and config it was trained from), the config, who started it, how long
training and evaluation took, Rasa's fingerprint (`model_id`, what `GET /status` reports) and the
held-out figures of bot.nlu.evaluate. Training runs in the background (bot.training.trainer, a
process of its own) so neither the bot nor the admin's command waits for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.crm.db import as_engine
from bot.crm.store import CRMStore
from bot.settings import PROJECT_ROOT
from bot.training import models as m

# What a model is trained from (relative to the project root): any change is a new data hash.
TRAINING_INPUTS = (
    "config.yml",
    "domain.yml",
    "data/nlu",
    "data/rules",
    "data/stories",
    "data/jieba",
)


class VersionNotFound(LookupError):
    pass


class RegistryError(RuntimeError):
    pass


def data_hash(root: Path, inputs=TRAINING_INPUTS) -> str:
    """sha256 over the training inputs' relative paths and bytes (dot files ignored)."""
    h = hashlib.sha256()
    for rel in inputs:
        p = root / rel
        files = (
            sorted(f for f in p.rglob("*") if f.is_file())
            if p.is_dir()
            else ([p] if p.exists() else [])
        )
        for f in files:
            if any(part.startswith(".") for part in f.relative_to(root).parts):
                continue
            h.update(str(f.relative_to(root)).encode())
            h.update(b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def model_fingerprint(path: Path) -> str:
    """Rasa's model_id from the archive's metadata.json (what /status calls the fingerprint)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar.getmembers():
                if member.name.lstrip("./") == "metadata.json":
                    fh = tar.extractfile(member)
                    if fh is not None:
                        return json.load(fh)["model_id"]
    except (OSError, tarfile.TarError, KeyError, ValueError) as exc:
        raise RegistryError(f"{path} is not a Rasa model archive: {exc}") from None
    raise RegistryError(f"{path} has no metadata.json: not a Rasa model archive")


def _row(v: m.ModelVersion) -> dict:
    return {
        "version": v.version,
        "status": v.status,
        "created": v.created_at.isoformat(),
        "created_by": v.created_by,
        "path": v.path,
        "fingerprint": v.fingerprint,
        "data_hash": v.data_hash,
        "train_seconds": v.train_seconds,
        "eval_seconds": v.eval_seconds,
        "figures": v.figures,
        "error": v.error,
        "note": v.note,
    }


class ModelRegistry:
    def __init__(
        self,
        engine_or_url: Engine | str | None,
        store: CRMStore,
        registry_dir: Path,
        project_root: Path = PROJECT_ROOT,
    ):
        self.engine = as_engine(engine_or_url)
        self.store = store
        self.dir = Path(registry_dir)
        self.root = Path(project_root)

    # ---- reading -------------------------------------------------------------------------
    def get(self, version: str) -> dict:
        with Session(self.engine, future=True) as s:
            v = s.execute(
                select(m.ModelVersion).where(m.ModelVersion.version == version)
            ).scalar_one_or_none()
            if v is None:
                raise VersionNotFound(f"no model version {version!r} (see `concierge model list`)")
            return _row(v)

    def find_by_fingerprint(self, fingerprint: str) -> Optional[dict]:
        with Session(self.engine, future=True) as s:
            v = (
                s.execute(
                    select(m.ModelVersion)
                    .where(
                        m.ModelVersion.fingerprint == fingerprint, m.ModelVersion.status == "ready"
                    )
                    .order_by(m.ModelVersion.id.desc())
                )
                .scalars()
                .first()
            )
            return _row(v) if v else None

    def versions(self) -> list[dict]:
        deployed = self.deployed_version()
        with Session(self.engine, future=True) as s:
            rows = s.execute(select(m.ModelVersion).order_by(m.ModelVersion.id.desc())).scalars()
            return [{**_row(v), "deployed": v.version == deployed} for v in rows]

    def deployments(self, limit: int = 20) -> list[dict]:
        with Session(self.engine, future=True) as s:
            rows = s.execute(
                select(m.ModelDeployment).order_by(m.ModelDeployment.id.desc()).limit(limit)
            ).scalars()
            return [
                {
                    "version": d.version,
                    "previous_version": d.previous_version,
                    "action": d.action,
                    "actor": d.actor,
                    "override_reason": d.override_reason,
                    "replicas": d.replicas,
                    "at": d.created_at.isoformat(),
                }
                for d in rows
            ]

    def deployed_version(self) -> Optional[str]:
        with Session(self.engine, future=True) as s:
            return s.execute(
                select(m.ModelDeployment.version).order_by(m.ModelDeployment.id.desc()).limit(1)
            ).scalar()

    def current_deployment(self) -> Optional[dict]:
        rows = self.deployments(limit=1)
        return rows[0] if rows else None

    # ---- writing -------------------------------------------------------------------------
    def new_version(self, actor: str, note: str | None = None) -> str:
        """A queued version row, named for the time and the data it will be trained on."""
        digest = data_hash(self.root)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        with Session(self.engine, future=True) as s, s.begin():
            name, n = f"{stamp}-{digest[:6]}", 1
            while s.execute(
                select(m.ModelVersion.id).where(m.ModelVersion.version == name)
            ).first():
                n += 1
                name = f"{stamp}-{digest[:6]}-{n}"
            s.add(
                m.ModelVersion(
                    version=name, status="queued", data_hash=digest, created_by=actor, note=note
                )
            )
        self.store.record_audit(actor, "model.train", "model_version", name, {"data_hash": digest})
        return name

    def update(self, version: str, **fields: Any) -> None:
        with Session(self.engine, future=True) as s, s.begin():
            v = s.execute(
                select(m.ModelVersion).where(m.ModelVersion.version == version)
            ).scalar_one_or_none()
            if v is None:
                raise VersionNotFound(f"no model version {version!r}")
            for k, val in fields.items():
                setattr(v, k, val)

    def record_deployment(
        self,
        version: str,
        previous: Optional[str],
        action: str,
        actor: str,
        replicas: dict,
        override_reason: str | None = None,
    ) -> None:
        with Session(self.engine, future=True) as s, s.begin():
            s.add(
                m.ModelDeployment(
                    version=version,
                    previous_version=previous,
                    action=action,
                    actor=actor,
                    override_reason=override_reason,
                    replicas=replicas,
                )
            )

    def import_archive(self, path: Path, actor: str, note: str) -> str:
        """Register an existing model archive (e.g. the one running before the first deploy) as
        a version; it is evaluated like a trained one (`bot.training.trainer.evaluate`)."""
        fingerprint = model_fingerprint(path)
        known = self.find_by_fingerprint(fingerprint)
        if known is not None:
            return known["version"]
        version = self.new_version(actor, note=note)
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / f"{version}.tar.gz"
        shutil.copyfile(path, target)
        self.update(
            version,
            status="evaluating",
            path=str(target),
            fingerprint=fingerprint,
            data_hash=None,
            config=None,
        )
        return version

    def spawn_training(self, version: str, env: Optional[dict] = None) -> subprocess.Popen:
        """Train `version` in a detached process (it outlives the command that asked for it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / f"{version}.log", "ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "bot.training.trainer", version],
                cwd=self.root,
                env={**os.environ, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

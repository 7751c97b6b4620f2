"""Deploy a model version to every running Rasa replica, and roll back, without a restart.

Each replica in RASA_URLS is told `PUT /model {"model_file": <archive>}` (Rasa's HTTP API,
RASA_AUTH_TOKEN): Rasa loads the archive and swaps its agent; conversations live in the tracker
store, not in the agent, so a conversation in flight keeps its slots across the switch. Each
replica's `GET /status` must then report the version's fingerprint (`model_id`).

All or nothing: if one replica fails, the ones already switched are put back on the previous
version, nothing is recorded as deployed, and the error names the replica. After a deploy the
archive is also copied to MODEL_DEPLOYED_PATH (the file the Procfile starts Rasa with), so a
replica that restarts later comes back on the deployed version, not an older one.

The regression gate (bot.training.gate) runs before anything is switched; an override needs a
reason, and the override, the refusal and every deploy/rollback are audited with who did it.
The archives must be readable by the replicas at the same path (one machine or a shared volume).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import requests

from bot.crm.store import CRMStore
from bot.training.gate import GatePolicy, regressions
from bot.training.registry import ModelRegistry, model_fingerprint

log = logging.getLogger(__name__)

LOAD_TIMEOUT_S = 300  # Rasa loads the archive inside the PUT (tens of seconds on 2 cores)


class DeployError(RuntimeError):
    pass


class GateRefused(DeployError):
    def __init__(self, version: str, reasons: list[str]):
        self.version, self.reasons = version, reasons
        super().__init__(
            f"{version} is worse than the deployed model: "
            + "; ".join(reasons)
            + ". Deploy it anyway only with --override REASON."
        )


class RasaReplicas:
    """The HTTP side: status and model swap of each configured Rasa URL."""

    def __init__(
        self,
        urls: tuple,
        token: Optional[str],
        timeout_s: float = LOAD_TIMEOUT_S,
        session: Optional[requests.Session] = None,
    ):
        if not urls:
            raise DeployError("no Rasa URL configured (RASA_URLS)")
        self.urls, self.token, self.timeout_s = tuple(urls), token, timeout_s
        self.http = session or requests.Session()

    def _params(self) -> dict:
        return {"token": self.token} if self.token else {}

    def status(self, url: str) -> dict:
        resp = self.http.get(f"{url}/status", params=self._params(), timeout=10)
        if resp.status_code != 200:
            raise DeployError(f"{url}/status answered {resp.status_code}: {resp.text[:200]}")
        return resp.json()

    def load(self, url: str, model_path: Path) -> None:
        resp = self.http.put(
            f"{url}/model",
            params=self._params(),
            json={"model_file": str(model_path)},
            timeout=self.timeout_s,
        )
        if resp.status_code != 204:
            raise DeployError(f"{url} refused the model ({resp.status_code}): {resp.text[:300]}")


@dataclass
class Deployer:
    registry: ModelRegistry
    replicas: RasaReplicas
    store: CRMStore
    deployed_path: Path
    policy: GatePolicy = GatePolicy()
    evaluate: Optional[Callable[[str], dict]] = None  # evaluates an imported baseline

    # ---- what runs now ---------------------------------------------------------------------
    def fingerprints(self) -> dict:
        out = {}
        for url in self.replicas.urls:
            try:
                out[url] = self.replicas.status(url).get("model_id")
            except (requests.RequestException, DeployError, ValueError) as exc:
                out[url] = f"unreachable: {exc}"
        return out

    def _baseline(self, actor: str) -> Optional[dict]:
        """The registry's deployed version; before the first deploy, the archive the replicas
        were started with (MODEL_DEPLOYED_PATH), registered and evaluated once."""
        current = self.registry.deployed_version()
        if current is not None:
            return self.registry.get(current)
        if not self.deployed_path.exists():
            return None
        running = set(self.fingerprints().values())
        fingerprint = model_fingerprint(self.deployed_path)
        if running != {fingerprint}:
            return None  # replicas run something else (or disagree): nothing known to compare
        version = self.registry.import_archive(
            self.deployed_path, actor, note="running before the first deploy"
        )
        row = self.registry.get(version)
        if row["status"] != "ready" and self.evaluate is not None:
            row = self.evaluate(version)
        self.registry.record_deployment(
            version, None, "baseline", actor, {u: "running" for u in self.replicas.urls}
        )
        return row

    # ---- switching -------------------------------------------------------------------------
    def deploy(self, version: str, *, actor: str, override: Optional[str] = None) -> dict:
        target = self.registry.get(version)
        if target["status"] != "ready":
            raise DeployError(
                f"{version} is {target['status']}, not ready"
                + (f": {target['error']}" if target.get("error") else "")
            )
        current = self._baseline(actor)
        if current is not None and current["version"] == version:
            raise DeployError(f"{version} is already deployed")
        reasons = (
            regressions(target["figures"], current["figures"], self.policy)
            if current is not None
            else ["the running model is not in the registry: nothing to compare with"]
        )
        if reasons:
            if not (override and override.strip()):
                self.store.record_audit(
                    actor, "model.deploy_refused", "model_version", version, {"reasons": reasons}
                )
                raise GateRefused(version, reasons)
            self.store.record_audit(
                actor,
                "model.gate_override",
                "model_version",
                version,
                {"reasons": reasons, "override": override.strip()},
            )
        previous = current["version"] if current else None
        replicas = self._switch(target, current)
        self.registry.record_deployment(
            version,
            previous,
            "deploy",
            actor,
            replicas,
            override.strip() if reasons and override else None,
        )
        self.store.record_audit(
            actor,
            "model.deploy",
            "model_version",
            version,
            {"previous": previous, "replicas": replicas, "gate": reasons or "passed"},
        )
        return {
            "version": version,
            "previous": previous,
            "replicas": replicas,
            "fingerprint": target["fingerprint"],
            "gate": reasons,
            "overridden": bool(reasons),
        }

    def rollback(self, *, actor: str) -> dict:
        """Back to the version deployed before the current one (no gate: it ran before)."""
        current = self.registry.current_deployment()
        if current is None or not current["previous_version"]:
            raise DeployError("nothing to roll back to: no earlier deployed version")
        target = self.registry.get(current["previous_version"])
        replicas = self._switch(target, self.registry.get(current["version"]))
        self.registry.record_deployment(
            target["version"], current["version"], "rollback", actor, replicas
        )
        self.store.record_audit(
            actor,
            "model.rollback",
            "model_version",
            target["version"],
            {"from": current["version"], "replicas": replicas},
        )
        return {
            "version": target["version"],
            "previous": current["version"],
            "replicas": replicas,
            "fingerprint": target["fingerprint"],
        }

    def _switch(self, target: dict, current: Optional[dict]) -> dict:
        path = Path(target["path"]).resolve()
        if not path.exists():
            raise DeployError(f"the archive of {target['version']} is missing: {path}")
        done: list[str] = []
        try:
            for url in self.replicas.urls:
                self.replicas.load(url, path)
                done.append(url)
                got = self.replicas.status(url).get("model_id")
                if got != target["fingerprint"]:
                    raise DeployError(
                        f"{url} reports fingerprint {got}, expected " f"{target['fingerprint']}"
                    )
        except (requests.RequestException, DeployError) as exc:
            undone = self._revert(done, current)
            self.store.record_audit(
                "system",
                "model.deploy_failed",
                "model_version",
                target["version"],
                {"error": str(exc), "reverted": undone},
            )
            raise DeployError(
                f"deploy of {target['version']} failed: {exc}; "
                f"replicas put back on the previous model: {undone or 'none'}"
            ) from None
        self._keep_for_restart(path)
        return {url: "ok" for url in done}

    def _revert(self, done: list[str], current: Optional[dict]) -> dict:
        if current is None or not current.get("path"):
            return {url: "left on the new model (no previous archive)" for url in done}
        out = {}
        for url in done:
            try:
                self.replicas.load(url, Path(current["path"]).resolve())
                out[url] = current["version"]
            except (requests.RequestException, DeployError) as exc:
                out[url] = f"revert failed: {exc}"
        return out

    def _keep_for_restart(self, archive: Path) -> None:
        target = self.deployed_path
        if target.exists() and target.resolve() == archive:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".deploy-", suffix=".tar.gz")
        os.close(fd)
        try:
            shutil.copyfile(archive, tmp)
            os.replace(tmp, target)
        except OSError as exc:  # the replicas run it already: say so, do not undo the deploy
            if os.path.exists(tmp):
                os.unlink(tmp)
            log.warning(
                "deployed, but %s was not updated (a restarted replica would load the "
                "old model): %s",
                target,
                exc,
            )

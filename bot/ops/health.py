"""Liveness and readiness. `/healthz`: the process answers (a supervisor restarts it if not).
`/readyz`: it can do its work -- every check passes (the database answers, Rasa's model is
loaded); a load balancer sends traffic only to a ready replica."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Dict, Tuple

from sqlalchemy import text

logger = logging.getLogger(__name__)

# name -> a blocking check returning None when fine, else what is wrong.
Check = Callable[[], "str | None"]


def database_check(engine) -> Check:
    def check():
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"database unreachable: {type(exc).__name__}"
        return None

    return check


class Readiness:
    def __init__(self, service: str, checks: Dict[str, Check]) -> None:
        self.service = service
        self.checks = dict(checks)

    def run_sync(self) -> Tuple[bool, Dict[str, str]]:
        results: Dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                problem = check()
            except Exception as exc:  # a check that raises is a failed check, never a 500
                problem = f"{type(exc).__name__}: {exc}"
            results[name] = problem or "ok"
        ready = all(v == "ok" for v in results.values())
        if not ready:
            logger.warning("%s not ready: %s", self.service, results)
        return ready, results

    async def run(self) -> Tuple[bool, Dict[str, str]]:
        return await asyncio.get_running_loop().run_in_executor(None, self.run_sync)

    def liveness(self) -> Dict[str, str]:
        return {"status": "ok", "service": self.service}

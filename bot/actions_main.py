"""`python -m bot.actions_main [--port 5055]`: the action server (rasa_sdk), after the preflight,
listening on ACTIONS_HOST (loopback: only Rasa calls it) with request bodies capped at
MAX_REQUEST_BYTES. Extra arguments go to `rasa run actions`."""
from __future__ import annotations

import os
import sys


def main() -> None:
    from bot.preflight import Problem, apply_http_limits, start_process
    from bot.settings import get_settings

    settings = get_settings()

    def bound_to_loopback(s):
        if s.actions_host not in ("127.0.0.1", "::1", "localhost"):
            return [Problem("ACTIONS_HOST", f"{s.actions_host}: anyone reaching the action "
                            "server could post a made-up tracker and act as any guest")]
        return []

    start_process("actions", settings, extra=[bound_to_loopback])
    apply_http_limits(settings)
    os.environ["SANIC_HOST"] = settings.actions_host  # rasa_sdk's endpoint reads it
    from rasa_sdk.__main__ import main as sdk_main

    sys.argv = ["rasa_sdk", "--actions", "actions", *sys.argv[1:]]
    sdk_main()


if __name__ == "__main__":
    main()

"""`python -m bot.actions_main [--port 5055]`: the action server (rasa_sdk), after the preflight,
listening on ACTIONS_HOST (loopback: only Rasa calls it) with request bodies capped at
MAX_REQUEST_BYTES. Extra arguments go to `rasa run actions`.

It also answers `/metrics` (with each action's time), `/healthz` and `/readyz` (bot/ops), and
logs each action call under the correlation id of the guest message it serves."""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger(__name__)


def main() -> None:
    from bot.preflight import Problem, apply_http_limits, start_process
    from bot.settings import get_settings

    settings = get_settings()

    def bound_to_loopback(s):
        if s.actions_host not in ("127.0.0.1", "::1", "localhost"):
            return [
                Problem(
                    "ACTIONS_HOST",
                    f"{s.actions_host}: anyone reaching the action "
                    "server could post a made-up tracker and act as any guest",
                )
            ]
        return []

    start_process("actions", settings, extra=[bound_to_loopback])
    # Every promise an action makes comes from the SLA policy: refuse to start without it.
    from bot.sla_terms import default_terms

    default_terms().check()
    apply_http_limits(settings)
    os.environ["SANIC_HOST"] = settings.actions_host  # rasa_sdk's endpoint reads it
    import rasa_sdk.endpoint as endpoint

    create_app = endpoint.create_app

    def create_app_with_ops(*args, **kwargs):
        app = create_app(*args, **kwargs)
        attach_ops(app, settings)
        return app

    endpoint.create_app = create_app_with_ops  # rasa_sdk has no hook for routes/middleware
    from rasa_sdk.__main__ import main as sdk_main

    sys.argv = ["rasa_sdk", "--actions", "actions", *sys.argv[1:]]
    sdk_main()


def action_call_of(body: bytes, encoding: str | None) -> dict:
    """The action call Rasa posted (deflated or not); {} when unreadable (rasa_sdk answers it)."""
    import json
    import zlib

    try:
        raw = zlib.decompress(body) if encoding == "deflate" else body
        call = json.loads(raw or b"{}")
    except (ValueError, zlib.error):
        return {}
    return call if isinstance(call, dict) else {}


def attach_ops(app, settings) -> None:
    """The log format, bot/ops' routes and the action timer on rasa_sdk's Sanic app."""
    from bot.ops.http import setup_logging
    from bot.wecom.db import get_engine

    setup_logging("actions", settings)
    instrument_action_server(app, get_engine(settings.database_url))


def instrument_action_server(app, engine) -> None:
    """/metrics, /healthz, /readyz; each /webhook call timed and logged under its message id."""
    import time

    from bot.ops.http import add_sanic_routes, build
    from bot.ops.logs import CORRELATION_ID
    from bot.ops.metrics import ACTION_SECONDS

    add_sanic_routes(app, *build("actions", engine, queue_depths=False))

    @app.on_request
    async def start_timer(request):
        if request.path != "/webhook" or request.method != "POST":
            return
        call = action_call_of(request.body, request.headers.get("Content-Encoding"))
        request.ctx.ops_action = str(call.get("next_action") or "unknown")[:100]
        latest = (call.get("tracker") or {}).get("latest_message") or {}
        CORRELATION_ID.set(latest.get("message_id") or None)  # this request's task only
        request.ctx.ops_started = time.perf_counter()

    @app.on_response
    async def stop_timer(request, response):
        started = getattr(request.ctx, "ops_started", None)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        # an unknown name is not a label of its own (no label per made-up name)
        action = request.ctx.ops_action if response.status != 404 else "(not found)"
        ACTION_SECONDS.labels(action, str(response.status)).observe(elapsed)
        logger.info(
            "action %s answered %s in %.0f ms",
            request.ctx.ops_action,
            response.status,
            elapsed * 1000,
        )


if __name__ == "__main__":
    main()

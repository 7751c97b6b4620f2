"""`python -m bot.rasa_main <rasa arguments>`: Rasa's own command line, after the preflight
(bot.preflight: refuses a production start with default secrets, the `rest` channel or a non-loopback
interface), the request-size cap, and the speed-ups of `bot.rasa_speedups`. The Procfiles and the
end-to-end tests start the server this way.

The server also answers `/metrics`, `/healthz` and `/readyz` (bot/ops; ready = the CRM database
answers and the model is loaded), and logs as LOG_FORMAT says, with correlation ids."""

from __future__ import annotations

import sys


def main() -> None:
    from bot.preflight import apply_http_limits, rasa_server_checks, start_process
    from bot.settings import get_settings

    args = sys.argv[1:]
    if args[:1] == ["run"] and "actions" not in args[1:2]:
        settings = get_settings()
        start_process("rasa", settings, extra=[rasa_server_checks(args[1:])])
        apply_http_limits(settings)
    from bot.events import rasa_broker
    from bot.rasa_speedups import apply_all

    apply_all()
    rasa_broker.apply()
    if args[:1] == ["run"] and "actions" not in args[1:2]:
        add_ops_routes()
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *args]
    rasa_main()


def add_ops_routes() -> None:
    """Wrap Rasa's `configure_app` so the server it builds also serves bot/ops' routes (Rasa
    has no hook for extra routes; the channel blueprints all sit under /webhooks/)."""
    import rasa.core.run as rasa_run

    configure_app = rasa_run.configure_app
    if getattr(configure_app, "_with_ops", False):
        return

    def configure_app_with_ops(*args, **kwargs):
        app = configure_app(*args, **kwargs)
        attach_ops(app)
        return app

    configure_app_with_ops._with_ops = True  # type: ignore[attr-defined]
    rasa_run.configure_app = configure_app_with_ops


def attach_ops(app) -> None:
    """/metrics, /healthz, /readyz and the log format on a Rasa server's Sanic app."""
    from bot.ops.http import setup_logging
    from bot.settings import get_settings
    from bot.wecom.db import get_engine

    settings = get_settings()
    setup_logging("rasa", settings)  # after Rasa configured its own: ours replaces it
    add_ops_to_rasa_app(app, get_engine(settings.database_url))


def add_ops_to_rasa_app(app, engine) -> None:
    from bot.ops.http import add_sanic_routes, build

    def model_loaded():
        agent = getattr(app.ctx, "agent", None)
        return None if agent is not None and agent.is_ready() else "no model loaded"

    add_sanic_routes(app, *build("rasa", engine, checks={"model": model_loaded}))


if __name__ == "__main__":
    main()

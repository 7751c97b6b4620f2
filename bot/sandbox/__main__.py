"""`python -m bot.sandbox [--host 127.0.0.1] [--port 8800]`: run the local WeCom stand-in."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from bot.sandbox.server import STATE, make_app
from bot.wecom import dev_defaults


def refuse_outside_development() -> None:
    """The sandbox signs callbacks with public secrets for any userid it is asked to: it must
    never run beside a real deployment."""
    from bot.settings import get_settings

    settings = get_settings()
    if not settings.relaxed:
        raise SystemExit(
            f"the WeCom sandbox stands in for WeCom and runs only under "
            f"CONCIERGE_ENV=development or test (now: "
            f"{settings.concierge_env_raw or 'unset, i.e. production'}); "
            "refusing to start"
        )


def main(argv=None) -> None:
    from bot.settings import load_sandbox_settings

    config = load_sandbox_settings()
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox", description=__doc__)
    parser.add_argument("--host", default=config.host)
    parser.add_argument("--port", type=int, default=config.port or dev_defaults.SANDBOX_PORT)
    args = parser.parse_args(argv)
    refuse_outside_development()
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s sandbox %(levelname)s %(message)s"
    )
    app = make_app()
    state = app[STATE]
    print(
        f"WeCom sandbox on http://{args.host}:{args.port}/  (API base for WECOM_API_BASE; chat page at /)"
    )
    print(f"  delivering callbacks to {state.connector_url}/webhooks/wecom/{{kf,aibot,app}}")
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

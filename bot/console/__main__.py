"""`python -m bot.console [--port N]`: the staff console process (Procfile `console`)."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web


def main(argv=None) -> int:
    from bot.console.app import make_app
    from bot.console.deps import build_deps
    from bot.preflight import PreflightFailed, start_process
    from bot.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m bot.console", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=settings.console_port)
    args = parser.parse_args(argv)
    from bot.ops.http import setup_logging

    setup_logging("console", settings)
    try:
        start_process("console", settings)
        deps = build_deps(settings)
    except PreflightFailed as exc:
        print(f"console: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # an invalid policy / staff file: say what, do not start
        print(f"console: cannot start: {exc}", file=sys.stderr)
        return 2
    print(
        f"Staff console on http://localhost:{args.port}/ (sign in: "
        f"concierge staff login-link USERID)",
        file=sys.stderr,
    )
    from bot.ops.http import add_aiohttp_routes, build
    from bot.wecom.db import get_engine

    app = make_app(deps)
    # /metrics and /readyz: keep them off the public proxy (docs/DEPLOY.md's nginx block).
    add_aiohttp_routes(
        app, *build("console", get_engine(settings.database_url), queue_depths=False)
    )
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

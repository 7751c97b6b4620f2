"""`python -m bot.sandbox [--host 127.0.0.1] [--port 8800]`: run the local WeCom stand-in."""
from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web

from bot.sandbox.server import STATE, make_app
from bot.wecom import dev_defaults


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", dev_defaults.SANDBOX_PORT)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("SANDBOX_LOG_LEVEL", "INFO"),
                        format="%(asctime)s sandbox %(levelname)s %(message)s")
    app = make_app()
    state = app[STATE]
    print(f"WeCom sandbox on http://{args.host}:{args.port}/  (API base for WECOM_API_BASE; chat page at /)")
    print(f"  delivering callbacks to {state.connector_url}/webhooks/wecom/{{kf,aibot,app}}")
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

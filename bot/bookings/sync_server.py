"""`python -m bot.bookings.sync_server [--port 5007]`: the authenticated PMS push endpoint.

Why its own process: a PMS pushes in bursts (a night audit re-sends the day), and each push
writes to the CRM; kept apart from Rasa (whose event loop serves guests) and from the WeCom
intake (whose 200 must stay fast), its load shows up nowhere else. It is small: one aiohttp
route, `POST /pms/bookings` (protocol in `bot.bookings.sync`), `GET /healthz`, and the
blocking work runs in a thread.

Environment (bot/settings.py): PMS_SYNC_SECRETS ("source:secret,..."), PMS_SYNC_PORT (5007),
DATABASE_URL, KNOWLEDGE_DIR. It runs the preflight (bot/preflight.py) first: in production it
refuses to start without secrets or with a secret shorter than 32 characters.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging

from aiohttp import web

from bot.bookings.sync import MAX_BODY_BYTES, PmsSync, parse_secrets

log = logging.getLogger(__name__)
MIN_SECRET_CHARS = 32
_dumps = functools.partial(json.dumps, ensure_ascii=False)


def build_app(sync: PmsSync) -> web.Application:
    async def push(request: web.Request) -> web.Response:
        body = await request.read()
        answer = await asyncio.to_thread(sync.handle, dict(request.headers), body)
        return web.json_response(answer.body, status=answer.status, dumps=_dumps)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "sources": sorted(sync.secrets)})

    app = web.Application(client_max_size=MAX_BODY_BYTES + 1)
    app.router.add_post("/pms/bookings", push)
    app.router.add_get("/healthz", healthz)
    return app


def secret_problems(secrets: dict[str, str]) -> list[str]:
    """What the preflight refuses in production (logged as warnings in development)."""
    if not secrets:
        return ["PMS_SYNC_SECRETS is not set: every PMS push would be refused"]
    return [
        f"PMS_SYNC_SECRETS: the secret of {source} is shorter than {MIN_SECRET_CHARS} " "characters"
        for source, secret in secrets.items()
        if len(secret) < MIN_SECRET_CHARS
    ]


def build_sync(settings) -> PmsSync:
    """The endpoint's collaborators, built here at the process's entry point."""
    from bot.bookings.replan import Replanner
    from bot.bookings.writer import BookingWriter
    from bot.crm.db import make_engine
    from bot.crm.store import CRMStore
    from bot.knowledge.kb import KnowledgeBase

    from bot.preflight import enforce

    secrets = parse_secrets(settings.pms_sync_secrets)
    enforce("pms-sync", settings, extra=[lambda _s: secret_problems(secrets)])
    engine = make_engine(settings.database_url)
    kb = KnowledgeBase.load(settings.knowledge_dir)
    return PmsSync(
        BookingWriter(engine, source="sync"),
        kb,
        secrets,
        on_changes=Replanner(CRMStore(engine), kb).handle,
    )


def main(argv=None) -> None:
    from bot.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=settings.pms_sync_port)
    parser.add_argument("--host", default="0.0.0.0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    web.run_app(build_app(build_sync(settings)), host=args.host, port=args.port)


if __name__ == "__main__":
    main()

"""`/metrics`, `/healthz` and `/readyz` on every process: routes for an aiohttp application (the
intake server, the console), for a Sanic application (Rasa, the action server), and a small
aiohttp server of its own for processes without one (the worker)."""

from __future__ import annotations

from typing import Optional

from aiohttp import web

from bot.ops.health import Readiness
from bot.ops.metrics import Exposition

PATHS = ("/metrics", "/healthz", "/readyz")


def add_aiohttp_routes(app: web.Application, exposition: Exposition, readiness: Readiness) -> None:
    async def metrics(_: web.Request) -> web.Response:
        body = await exposition.render()
        return web.Response(body=body, headers={"Content-Type": exposition.content_type})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(readiness.liveness())

    async def readyz(_: web.Request) -> web.Response:
        ready, checks = await readiness.run()
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    app.router.add_get("/metrics", metrics)
    if not any(getattr(r.resource, "canonical", None) == "/healthz" for r in app.router.routes()):
        app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def add_sanic_routes(app, exposition: Exposition, readiness: Readiness) -> None:
    from sanic import response

    async def metrics(_request):
        return response.raw(await exposition.render(), content_type=exposition.content_type)

    async def healthz(_request):
        return response.json(readiness.liveness())

    async def readyz(_request):
        ready, checks = await readiness.run()
        return response.json({"ready": ready, "checks": checks}, status=200 if ready else 503)

    app.add_route(metrics, "/metrics", methods=["GET"], name="ops_metrics")
    app.add_route(healthz, "/healthz", methods=["GET"], name="ops_healthz")
    app.add_route(readyz, "/readyz", methods=["GET"], name="ops_readyz")


async def start_server(
    exposition: Exposition, readiness: Readiness, host: str, port: int
) -> Optional[web.AppRunner]:
    """Serve the three routes on host:port until the returned runner is cleaned up; None when
    port is 0 (turned off)."""
    if not port:
        return None
    app = web.Application()
    add_aiohttp_routes(app, exposition, readiness)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def build(service: str, engine, *, queue_depths: bool = True, checks: Optional[dict] = None):
    """A process's (Exposition, Readiness): the database check, plus `checks`; the queue depths
    read through `engine` unless `queue_depths` is False."""
    from bot.ops.health import database_check
    from bot.ops.metrics import QueueDepths

    exposition = Exposition(QueueDepths(engine) if queue_depths else None)
    readiness = Readiness(service, {"database": database_check(engine), **(checks or {})})
    return exposition, readiness


def setup_logging(service: str, settings) -> None:
    """The process's log handler, as LOG_FORMAT / LOG_LEVEL say."""
    from bot.ops.logs import configure_logging

    configure_logging(service, settings.log_format, settings.log_level)

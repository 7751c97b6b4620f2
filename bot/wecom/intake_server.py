"""`python -m bot.wecom.intake_server [--port 5006]`: WeCom's callback URLs, answered by a process
of their own.

Rasa serves the same routes (connectors/wecom.py), but there the 200 shares an event loop with the
NLU and the tracker store: under load a callback waits behind other guests' turns. This server
does only what must happen before the 200 (verify, decrypt, dedupe, store in the inbox: the same
`CallbackIntake` code), pulls 微信客服 messages with sync_msg, and then tells Rasa which senders have
new rows (`POST <rasa>/webhooks/wecom/inbox`). Rasa works them off in order, as if its own route
had stored them. If Rasa is down or busy, nothing is lost: the rows wait in the inbox, and Rasa
drains them at start and on its sweep.

Point WeCom's callback URLs (or the sandbox's SANDBOX_CONNECTOR_URL) at this port, with the
same paths: /webhooks/wecom/kf, /webhooks/wecom/aibot, /webhooks/wecom/app.

Environment: WECOM_INTAKE_PORT (5006), WECOM_INTAKE_NOTIFY_URL (where to tell Rasa; default
http://127.0.0.1:5005/webhooks/wecom/inbox; with several Rasa replicas a comma-separated list,
told in turn, the next one tried when one is down), plus the WECOM_* secrets and DATABASE_URL/REDIS_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Optional, Set

import aiohttp
from aiohttp import web

from bot.wecom.config import WeComConfig
from bot.wecom.delivery.host import DeliveryHost
from bot.wecom.delivery.intake import HANDLE_MS_HEADER, INBOX_TOKEN_HEADER, SURFACES, CallbackIntake
from bot.wecom.delivery.tasks import BackgroundTasks
from bot.wecom.services import WeComServices

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5006
DEFAULT_NOTIFY_URL = "http://127.0.0.1:5005/webhooks/wecom/inbox"


class RasaNotifier:
    """Batches the senders with new inbox rows and tells Rasa; keeps them until Rasa took them."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        retry_s: float = 1.0,
        token: Optional[str] = None,
    ) -> None:
        self.url = url
        self.urls = [u.strip() for u in url.split(",") if u.strip()] or [url]
        self._next = 0
        self.session = session
        # Rasa's inbox route wants it (connectors/wecom.py): only the intake may wake Rasa.
        self.headers = {INBOX_TOKEN_HEADER: token} if token else {}
        self.retry_s = retry_s
        self.pending: Set[str] = set()
        self._wake = asyncio.Event()
        self._task: Optional[asyncio.Task] = None
        self.failures = 0

    def add(self, sender_id: str) -> None:
        self.pending.add(sender_id)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def flush(self) -> bool:
        if not self.pending:
            return True
        senders, self.pending = sorted(self.pending), set()
        problems = []
        # Several Rasa replicas (a comma-separated URL list): take turns, and on a failure try
        # the next -- any replica may work a sender off (the inbox lease keeps the order).
        for i in range(len(self.urls)):
            url = self.urls[(self._next + i) % len(self.urls)]
            try:
                async with self.session.post(
                    url,
                    json={"senders": senders},
                    headers=self.headers,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as resp:
                    if resp.status == 200:
                        self._next = (self._next + i + 1) % len(self.urls)
                        return True
                    problems.append(f"{url}: HTTP {resp.status}")
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                problems.append(f"{url}: {type(exc).__name__}: {exc}")
        self.pending.update(senders)  # Rasa also drains the inbox at start: this only saves time
        self.failures += 1
        logger.warning(
            "could not tell Rasa about %d sender(s) (%s); retrying",
            len(senders),
            "; ".join(problems),
        )
        return False

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(self.retry_s)
                self._wake.set()


class IntakeServer:
    def __init__(
        self,
        config: WeComConfig,
        notify_url: str,
        *,
        sweep_interval_s: float = 30.0,
        services: Optional[WeComServices] = None,
        notify_token: Optional[str] = None,
        max_request_bytes: int = 1024 * 1024,
        ops=None,
        tasks: Optional[BackgroundTasks] = None,
    ) -> None:
        self.config = config
        self.ops = ops  # bot.ops.http.build(...): /metrics, /healthz, /readyz on this port
        self.notify_url = notify_url
        self.notify_token = notify_token
        self.max_request_bytes = max_request_bytes
        self.sweep_interval_s = sweep_interval_s
        self.services = services
        self.tasks = tasks
        self.host: Optional[DeliveryHost] = None
        self.notifier: Optional[RasaNotifier] = None
        self._session: Optional[aiohttp.ClientSession] = None

    @property
    def intake(self) -> Optional[CallbackIntake]:
        return self.host.intake if self.host is not None else None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_request_bytes)  # larger: 413
        # aiohttp 3.8 types its signal callbacks oddly: the ignores are for that, not for us.
        app.on_startup.append(self._startup)  # type: ignore[arg-type]
        app.on_cleanup.append(self._cleanup)  # type: ignore[arg-type]
        app.router.add_get("/webhooks/wecom/", self._health)
        app.router.add_get("/webhooks/wecom", self._health)
        for surface in SURFACES:
            app.router.add_route("GET", f"/webhooks/wecom/{surface}", self._route(surface))
            app.router.add_route("POST", f"/webhooks/wecom/{surface}", self._route(surface))
        if self.ops is not None:
            from bot.ops.http import add_aiohttp_routes

            add_aiohttp_routes(app, *self.ops)
        return app

    async def _startup(self, app: web.Application) -> None:
        if self.services is None:
            self.services = WeComServices(self.config)
        self._session = aiohttp.ClientSession()
        self.notifier = RasaNotifier(self.notify_url, self._session, token=self.notify_token)
        self.notifier.start()
        # The same receiving code as Rasa's channel; stored senders are told to Rasa.
        self.host = DeliveryHost(
            self.config,
            self.services,
            on_stored=self.notifier.add,
            sweep_interval_s=self.sweep_interval_s,
            tasks=self.tasks,
            clock=self.services.clock,
        )
        await self.host.start()

    async def _cleanup(self, app: web.Application) -> None:
        if self.host is not None:
            await self.host.stop()
        if self.notifier is not None:
            await self.notifier.flush()
            await self.notifier.stop()
        if self._session is not None:
            await self._session.close()
        if self.services is not None:
            await self.services.close()

    async def _health(self, request: web.Request) -> web.Response:
        assert self.host is not None
        return web.json_response(
            {
                "status": "ok",
                "surfaces": self.host.intake.surfaces(),
                "notify_pending": len(self.notifier.pending) if self.notifier else 0,
            }
        )

    def _route(self, surface: str):
        async def handler(request: web.Request) -> web.Response:
            assert self.host is not None
            started = time.perf_counter()
            body = await request.read() if request.method == "POST" else b""
            args = {key: request.query.get(key) for key in request.query}
            answer = await self.host.intake.handle(
                surface, request.method, args, body, request.remote or ""
            )
            content_type, _, charset = answer.content_type.partition("; charset=")
            return web.Response(
                status=answer.status,
                text=answer.text,
                content_type=content_type,
                charset=charset or "utf-8",
                headers={HANDLE_MS_HEADER: f"{(time.perf_counter() - started) * 1000:.2f}"},
            )

        return handler


def main(argv=None) -> None:
    from bot.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m bot.wecom.intake_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default=settings.intake.host)
    parser.add_argument("--port", type=int, default=settings.intake.port)
    parser.add_argument("--notify-url", default=settings.intake.notify_url)
    args = parser.parse_args(argv)
    from bot.ops.http import build, setup_logging
    from bot.preflight import start_process
    from bot.wecom.db import get_engine

    setup_logging("intake", settings)
    start_process("intake", settings)
    server = IntakeServer(
        WeComConfig.load(),
        args.notify_url,
        notify_token=settings.wecom_inbox_token,
        max_request_bytes=settings.max_request_bytes,
        ops=build("intake", get_engine(settings.database_url)),
    )
    web.run_app(server.app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

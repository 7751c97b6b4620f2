"""Test helpers for the WeCom channel: run the sandbox and a Sanic app on loopback ports, a fake
Rasa that records what it gets and answers through the output channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional

import aiohttp
from aiohttp import web

from bot.sandbox.server import make_app
from bot.sandbox.state import SandboxState


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def run_sandbox(port: Optional[int] = None, **state_kwargs):
    port = port or free_port()
    state = SandboxState(**state_kwargs)
    app = make_app(state)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve_sanic(app_factory, port: Optional[int] = None):
    """Serve the Sanic app `app_factory(unique_name)` builds on a loopback port; yields
    (app, base URL)."""
    from sanic import Sanic

    Sanic.test_mode = True  # lets several apps start in one process (Sanic's touch-up re-runs)
    port = port or free_port()
    app = app_factory(f"test_{uuid.uuid4().hex[:8]}")
    app.config.ACCESS_LOG = False
    server = await app.create_server(
        host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
    )
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await stop_sanic(server)


@contextlib.asynccontextmanager
async def run_sanic(channel, on_new_message, port: Optional[int] = None):
    """Mount the channel's blueprint like Rasa does (/webhooks/wecom) and serve it."""
    from sanic import Sanic

    def build(name: str):
        app = Sanic(name)
        app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/wecom")
        return app

    async with serve_sanic(build, port) as (_, url):
        yield url


async def stop_sanic(server) -> None:
    """Stop like Sanic's own runner: listeners, then close idle keep-alive connections."""
    await server.before_stop()
    server.close()
    await server.wait_closed()
    for conn in list(server.connections):
        conn.close_if_idle()
    for _ in range(50):
        if not server.connections:
            break
        await asyncio.sleep(0.02)
    await server.after_stop()


@dataclass
class FakeRasa:
    """Stands in for `agent.handle_message`: records messages, replies via the output channel."""

    reply: Optional[Callable[[Any], Awaitable[None]]] = None
    delay: Callable[[str], float] = lambda text: 0.0
    messages: List[Any] = field(default_factory=list)
    active: int = 0
    max_active_per_sender: Dict[str, int] = field(default_factory=dict)

    async def __call__(self, message) -> None:
        self.active += 1
        try:
            self.messages.append(message)
            wait = self.delay(message.text or "")
            if wait:
                await asyncio.sleep(wait)
            if self.reply is not None:
                await self.reply(message)
            else:
                await message.output_channel.send_text_message(
                    message.sender_id, f"收到：{message.text}"
                )
        finally:
            self.active -= 1

    def texts(self, sender_id: Optional[str] = None) -> List[str]:
        return [m.text for m in self.messages if sender_id is None or m.sender_id == sender_id]


async def post_json(http: aiohttp.ClientSession, url: str, body: Dict[str, Any]) -> Dict[str, Any]:
    async with http.post(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def sandbox_calls(
    http: aiohttp.ClientSession, base: str, path: Optional[str] = None
) -> List[Dict[str, Any]]:
    url = f"{base}/_sandbox/calls" + (f"?path={path}" if path else "")
    async with http.get(url) as resp:
        return (await resp.json())["calls"]


def kf_texts(calls: List[Dict[str, Any]]) -> List[str]:
    out = []
    for c in calls:
        body = c.get("body") or {}
        if c["path"] in ("/cgi-bin/kf/send_msg", "/cgi-bin/kf/send_msg_on_event") and not c.get(
            "errcode"
        ):
            if body.get("msgtype") == "text":
                out.append(body["text"]["content"])
            elif body.get("msgtype") == "msgmenu":
                out.append(body["msgmenu"].get("head_content", ""))
    return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)

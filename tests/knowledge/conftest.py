"""Fixtures for the knowledge tests: the real knowledge base, a fixed clock, and a local stand-in
for the QWeather API that serves recorded responses (no internet in tests)."""

from __future__ import annotations

import json
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bot.knowledge.kb import KnowledgeBase
from bot.settings import PROJECT_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
KNOWLEDGE_DIR = PROJECT_ROOT / "data" / "knowledge"
TODAY = date(2025, 11, 26)  # a Wednesday; the recorded forecast starts 2025-11-29


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture
def kb() -> KnowledgeBase:
    return KnowledgeBase.load(KNOWLEDGE_DIR)


@pytest.fixture
def today() -> date:
    return TODAY


class QWeatherStub:
    """Routes path -> (HTTP status, body, delay seconds); records every request it gets."""

    def __init__(self):
        self.base = ""
        self.requests: list[tuple[str, dict]] = []
        self.routes: dict[str, tuple[int, str, float]] = {}

    def route(
        self,
        path: str,
        *,
        fixture: str | None = None,
        body: object = None,
        status: int = 200,
        delay: float = 0.0,
    ) -> None:
        text = fixture_text(fixture) if fixture else json.dumps(body, ensure_ascii=False)
        self.routes[path] = (status, text, delay)

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]


@pytest.fixture
def qweather():
    """A QWeather stand-in on 127.0.0.1 (random port), serving the recorded Sanya responses."""
    stub = QWeatherStub()
    stub.route("/geo/v2/city/lookup", fixture="qweather_city_lookup_sanya.json")
    stub.route("/v7/weather/7d", fixture="qweather_weather_7d_sanya.json")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            url = urlparse(self.path)
            stub.requests.append((url.path, parse_qs(url.query)))
            status, text, delay = stub.routes.get(url.path, (404, '{"code": "404"}', 0.0))
            if delay:
                time.sleep(delay)
            payload = text.encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    stub.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()

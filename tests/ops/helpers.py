"""Reading metric values and serving a bare Sanic app in tests."""
from __future__ import annotations

import contextlib
import uuid
from typing import Dict, Optional

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.wecom.helpers import free_port, stop_sanic


def sample(name: str, **labels) -> float:
    """The current value of one sample in this process (0 when never observed)."""
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def parse(text: str) -> Dict[str, float]:
    """An exposition as {'name{a="b"}': value} (label order as prometheus_client writes it)."""
    out: Dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


@contextlib.asynccontextmanager
async def serve_sanic(app_factory, port: Optional[int] = None):
    from sanic import Sanic

    Sanic.test_mode = True
    port = port or free_port()
    app = app_factory(f"ops_test_{uuid.uuid4().hex[:8]}")
    app.config.ACCESS_LOG = False
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await stop_sanic(server)

"""Database access for the WeCom tables: the CRM's engine factory, one engine per URL, and a way
to run the (blocking) SQLAlchemy calls off the event loop."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any, Callable, Dict, Optional, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from bot.core.time import aware, utcnow  # noqa: F401 - callers import them from here
from bot.crm.db import make_engine, make_session_factory, session_scope
from bot.settings import get_settings

T = TypeVar("T")

_engines: Dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(url: Optional[str] = None) -> Engine:
    url = url or get_settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            _engines[url] = engine
        return engine


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


class Database:
    """A session factory plus `run()`, which executes a blocking function in a worker thread."""

    def __init__(self, engine: Optional[Engine] = None) -> None:
        self.engine = engine or get_engine()
        self.factory: sessionmaker = make_session_factory(self.engine)

    def session(self):
        return session_scope(self.factory)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(fn, *args, **kwargs)
        )

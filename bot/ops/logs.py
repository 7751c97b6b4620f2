"""Structured logs: one JSON object per line (LOG_FORMAT=json), each with the correlation id of
the guest message being worked on.

The correlation id is the WeCom msgid (else the inbox dedupe key): the intake sets it while it
stores the callback, the inbox worker while Rasa handles the row and the reply goes out
(bot/wecom/delivery/pipeline.py), the action server from the tracker's latest message (its id is the same
msgid). It lives in a context variable, so asyncio tasks started meanwhile inherit it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from typing import Any, Dict, Iterator, Mapping, Optional

CORRELATION_ID: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "concierge_correlation_id", default=None
)

# LogRecord attributes that are not extra fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "correlation_id",
}


def correlation_of(dedupe_key: str, payload: Optional[Mapping[str, Any]]) -> str:
    """The id one WeCom message is known by from callback to reply."""
    msgid = (payload or {}).get("msgid")
    return str(msgid) if msgid else dedupe_key


@contextlib.contextmanager
def correlation(value: Optional[str]) -> Iterator[None]:
    token = CORRELATION_ID.set(value)
    try:
        yield
    finally:
        CORRELATION_ID.reset(token)


class CorrelationFilter(logging.Filter):
    """Stamps every record with the current correlation id (None outside a message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = CORRELATION_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: Dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None) or CORRELATION_ID.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
                )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"


def configure_logging(service: str, fmt: str = "text", level: str = "INFO") -> logging.Handler:
    """The root logger's one handler: JSON lines (fmt "json") or text, with correlation ids.
    Replaces handlers installed before (Rasa's coloured ones) so no line is written twice."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level.upper())  # also for loggers that set a lower level of their own
    handler.addFilter(CorrelationFilter())
    handler.setFormatter(
        JsonFormatter(service) if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler

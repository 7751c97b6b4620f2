"""Logs carry ids or hashes, never guests' WeCom ids in clear (PIPL: logs are copied around).

`install()` wraps the logging record factory, so every record of every logger (ours, Rasa's,
Sanic's, aiohttp's) is redacted once, when it is made: WeCom external user ids (`wm…`/`wo…`) and
the open ids of 微信客服 guests become `wm#<8 hex>`, a keyed-free short hash that still lets one
follow a conversation through the log without naming the guest. Guest text is not logged by our
code (the log lines carry ids and counts); this catches what libraries print.
"""

from __future__ import annotations

import hashlib
import logging
import re

# WeCom external userids: wm/wo + url-safe base64-ish, 20-64 characters in practice.
_EXTERNAL_ID = re.compile(r"\b(w[mo])([A-Za-z0-9_\-]{14,64})\b")
_INSTALLED = "_concierge_redacting"


def redact(text: str) -> str:
    def short(match: re.Match) -> str:
        digest = hashlib.sha256(match.group(0).encode("utf-8")).hexdigest()[:8]
        return f"{match.group(1)}#{digest}"

    return _EXTERNAL_ID.sub(short, text)


def install() -> None:
    """Idempotent: wrap the current record factory once per process."""
    current = logging.getLogRecordFactory()
    if getattr(current, _INSTALLED, False):
        return

    def factory(*args, **kwargs):
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    setattr(factory, _INSTALLED, True)
    logging.setLogRecordFactory(factory)

"""The PMS push: bookings a hotel system sends as they change, authenticated per source.

Request (`POST /pms/bookings`, served by `bot.bookings.sync_server`):
- headers `X-PMS-Source: <source>`, `X-PMS-Timestamp: <unix seconds>`,
  `X-PMS-Signature: <hex HMAC-SHA256(secret of source, "<timestamp>.<raw body>")>`;
- body JSON: one booking object or `{"bookings": [...]}` (at most `MAX_BOOKINGS`), with the
  importer's fields (English names, or the Chinese headers) plus `version` or `updated_at`.

Answers: 200 with `{"created", "updated", "unchanged", "stale", "rejected": [{"index",
"reason"}]}` (idempotent: a booking whose version is not newer than the stored one is `stale`,
an identical one `unchanged`); 400 malformed JSON or shape; 401 unknown source, missing or bad
signature, timestamp outside the window (±`window_s`, 300 s); 409 the same signed request again
(a replay); 413 too large; 422 when every booking was rejected; 503 the database is down.
Secrets come from PMS_SYNC_SECRETS (`source:secret,...`, read in bot/settings.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from bot.bookings.rows import HEADERS, RowError, _header_key, parse_row
from bot.bookings.writer import BookingChange, BookingWriter
from bot.crm import models as m
from bot.crm.db import make_session_factory, session_scope
from bot.crm.errors import StoreUnavailable
from bot.knowledge.kb import KnowledgeBase

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_BOOKINGS = 500
WINDOW_S = 300
SOURCE_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = (
    "X-PMS-Source",
    "X-PMS-Timestamp",
    "X-PMS-Signature",
)
_FIELD_OF = {_header_key(alias): name for name, aliases in HEADERS.items() for alias in aliases}


@dataclass(frozen=True)
class SyncAnswer:
    status: int
    body: dict


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The signature a PMS sends (also what tests and the sandbox use to sign)."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def parse_secrets(text: str | None) -> dict[str, str]:
    """PMS_SYNC_SECRETS "opera:abc,ctrip:def" -> {"opera": "abc", "ctrip": "def"}."""
    secrets: dict[str, str] = {}
    for part in (text or "").split(","):
        source, _, secret = part.strip().partition(":")
        if source.strip() and secret.strip():
            secrets[source.strip()] = secret.strip()
    return secrets


def _error(status: int, reason: str) -> SyncAnswer:
    return SyncAnswer(status, {"error": reason})


class PmsSync:
    def __init__(
        self,
        writer: BookingWriter,
        kb: KnowledgeBase,
        secrets: Mapping[str, str],
        *,
        on_changes: Callable[[list[BookingChange]], None] | None = None,
        window_s: int = WINDOW_S,
        clock: Callable[[], float] = time.time,
    ):
        self.writer = writer
        self.kb = kb
        self.secrets = dict(secrets)
        self.on_changes = on_changes
        self.window_s = window_s
        self.clock = clock
        self._factory = make_session_factory(writer.engine)

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> SyncAnswer | None:
        """None when the request is signed by a known source within the window."""
        source = headers.get(SOURCE_HEADER) or ""
        secret = self.secrets.get(source)
        if secret is None:
            return _error(
                401,
                f"unknown source {source[:64]!r}" if source else f"missing {SOURCE_HEADER} header",
            )
        stamp = headers.get(TIMESTAMP_HEADER) or ""
        if not stamp.isdigit():
            return _error(401, f"missing or malformed {TIMESTAMP_HEADER} (unix seconds)")
        if abs(self.clock() - int(stamp)) > self.window_s:
            return _error(401, f"timestamp outside the {self.window_s} s window (check the clock)")
        given = (headers.get(SIGNATURE_HEADER) or "").strip().lower()
        if not given or not hmac.compare_digest(given, sign(secret, stamp, body)):
            return _error(401, "bad signature")
        return None

    def handle(self, headers: Mapping[str, str], body: bytes) -> SyncAnswer:
        """The whole request: blocking (database), so servers run it in a thread."""
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"body larger than {MAX_BODY_BYTES} bytes")
        denied = self.authenticate(headers, body)
        if denied is not None:
            return denied
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, f"malformed JSON: {exc}")
        items = (
            payload.get("bookings")
            if isinstance(payload, dict) and "bookings" in payload
            else [payload]
        )
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return _error(400, 'expected a booking object or {"bookings": [objects]}')
        if len(items) > MAX_BOOKINGS:
            return _error(413, f"more than {MAX_BOOKINGS} bookings in one request")
        source = headers[SOURCE_HEADER]
        try:
            if not self._first_time(source, headers[SIGNATURE_HEADER].strip().lower()):
                return _error(409, "this signed request was already received (replay)")
            return self._process(source, items)
        except StoreUnavailable as exc:
            log.error("PMS sync from %s: CRM unavailable: %s", source, exc)
            return _error(503, "the booking store is unavailable; retry later")

    def _first_time(self, source: str, signature: str) -> bool:
        cutoff = m.utcnow() - dt.timedelta(seconds=2 * self.window_s)
        try:
            with session_scope(self._factory) as s:
                s.execute(delete(m.PmsSyncRequest).where(m.PmsSyncRequest.received_at < cutoff))
                s.add(m.PmsSyncRequest(signature=signature, source=source))
        except IntegrityError:
            return False
        return True

    def _process(self, source: str, items: list[dict[str, Any]]) -> SyncAnswer:
        rows, rejected = [], []
        for index, item in enumerate(items):
            raw = {}
            for key, value in item.items():
                field = _FIELD_OF.get(_header_key(key))
                if field is not None:
                    raw[field] = value
            if not raw.get("version") and not item.get("updated_at"):
                rejected.append({"index": index, "reason": "version or updated_at is required"})
                continue
            try:
                rows.append((index, parse_row(raw, self.kb)))
            except RowError as exc:
                rejected.append({"index": index, "reason": str(exc)})
        keys: dict[tuple[str, str], int] = {}
        unique = []
        for index, row in rows:
            if row.key in keys:
                rejected.append({"index": index, "reason": f"duplicate of booking {keys[row.key]}"})
            else:
                keys[row.key] = index
                unique.append((index, row))
        result = self.writer.write(unique)
        counts = {name: 0 for name in ("created", "updated", "unchanged", "stale")}
        for outcome in result.outcomes.values():
            counts[outcome] += 1
        rejected += [{"index": i, "reason": r} for i, r in result.rejected.items()]
        if result.changes and self.on_changes is not None:
            self.on_changes(result.changes)
        body = {**counts, "rejected": sorted(rejected, key=lambda r: r["index"])}
        log.info("PMS sync from %s: %s", source, {**counts, "rejected": len(rejected)})
        return SyncAnswer(422 if rejected and not result.outcomes else 200, body)

"""The PMS push: HMAC per source, timestamp window, replays, idempotent by version."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.bookings.replan import Replanner
from bot.bookings.sync import PmsSync, parse_secrets, sign
from bot.bookings.sync_server import build_app, secret_problems
from bot.bookings.writer import BookingWriter
from bot.knowledge.kb import KnowledgeBase

NOW = 1_796_000_000
SECRET = "s3cret-for-opera-0123456789abcdef"
BOOKING = {
    "property_code": "SYHT01",
    "confirmation_no": "P100",
    "guest_name": "林晓",
    "phone": "13800138000",
    "check_in": "2026-12-05",
    "check_out": "2026-12-09",
    "status": "confirmed",
    "amount": "4800",
    "version": "3",
}


@pytest.fixture
def sync(store):
    return PmsSync(
        BookingWriter(store.engine, source="sync"),
        KnowledgeBase.default(),
        {"opera": SECRET},
        on_changes=Replanner(store).handle,
        clock=lambda: NOW,
    )


def _headers(body: bytes, *, source="opera", secret=SECRET, at=NOW) -> dict:
    return {
        "X-PMS-Source": source,
        "X-PMS-Timestamp": str(at),
        "X-PMS-Signature": sign(secret, at, body),
    }


def _push(sync, payload, **kw):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return sync.handle(_headers(body, **kw), body)


def test_a_signed_push_creates_then_is_idempotent(sync, store):
    first = _push(sync, BOOKING)
    assert first.status == 200 and first.body["created"] == 1
    # The same booking again, newly signed (a PMS re-sending): nothing changes.
    again = _push(sync, {"bookings": [BOOKING]}, at=NOW + 1)
    assert again.status == 200 and again.body["unchanged"] == 1
    older = _push(sync, {**BOOKING, "check_in": "2026-12-01", "version": "2"}, at=NOW + 2)
    assert older.body["stale"] == 1  # out of order: the stored version 3 stands
    moved = _push(sync, {**BOOKING, "check_in": "2026-12-06", "version": "4"}, at=NOW + 3)
    assert moved.body["updated"] == 1
    [booking] = store.bookings(store.list_guests()[0].sender_id)
    assert str(booking.check_in) == "2026-12-06" and booking.source_version == "4"
    assert booking.source == "sync"


@pytest.mark.parametrize(
    "change, status, reason",
    [
        ({"secret": "wrong"}, 401, "bad signature"),
        ({"source": "nobody"}, 401, "unknown source"),
        ({"at": NOW - 301}, 401, "outside the 300 s window"),
        ({"at": NOW + 301}, 401, "outside the 300 s window"),
    ],
)
def test_authentication_failures(sync, change, status, reason):
    body = json.dumps(BOOKING).encode()
    answer = sync.handle(_headers(body, **change), body)
    assert answer.status == status and reason in answer.body["error"]


def test_replayed_request_is_refused(sync):
    body = json.dumps(BOOKING).encode()
    headers = _headers(body)
    assert sync.handle(headers, body).status == 200
    replay = sync.handle(headers, body)
    assert replay.status == 409 and "replay" in replay.body["error"]


@pytest.mark.parametrize(
    "body, status, reason",
    [
        (b"{not json", 400, "malformed JSON"),
        (b"\xff\xfe", 400, "malformed JSON"),
        (b"[1, 2]", 400, "expected a booking object"),
        (json.dumps({"bookings": []}).encode(), 400, "expected a booking object"),
        (
            json.dumps({k: v for k, v in BOOKING.items() if k != "version"}).encode(),
            422,
            "version or updated_at is required",
        ),
        (json.dumps({**BOOKING, "check_out": "2026-12-01"}).encode(), 422, "not after check_in"),
    ],
)
def test_bad_input_gets_4xx_with_the_reason(sync, body, status, reason):
    answer = sync.handle(_headers(body), body)
    assert answer.status == status
    assert reason in json.dumps(answer.body, ensure_ascii=False)


def test_a_push_with_some_bad_bookings_takes_the_good_ones(sync):
    payload = {
        "bookings": [
            BOOKING,
            {**BOOKING, "confirmation_no": "P101", "phone": "123"},
            {
                **BOOKING,
                "confirmation_no": "P102",
                "updated_at": "2026-11-30T10:00:00+08:00",
                "version": None,
            },
        ]
    }
    answer = _push(sync, payload)
    assert answer.status == 200 and answer.body["created"] == 2
    assert answer.body["rejected"] == [
        {"index": 1, "reason": "phone '123' is not a mainland mobile number"}
    ]


def test_http_endpoint_and_secret_rules(sync):
    async def run():
        async with TestClient(TestServer(build_app(sync))) as client:
            body = json.dumps(BOOKING).encode()
            resp = await client.post("/pms/bookings", data=body, headers=_headers(body))
            assert resp.status == 200 and (await resp.json())["created"] == 1
            resp = await client.post("/pms/bookings", data=b"{}", headers={})
            assert resp.status == 401 and "X-PMS-Source" in (await resp.json())["error"]
            assert (await (await client.get("/healthz")).json())["sources"] == ["opera"]

    asyncio.run(run())
    assert parse_secrets(" opera:abc , bad, ctrip:def ") == {"opera": "abc", "ctrip": "def"}
    assert "not set" in secret_problems({})[0]
    assert "opera is shorter than 32" in secret_problems({"opera": "short"})[0]
    assert secret_problems({"opera": SECRET}) == []

"""The Rasa server and the action server (both Sanic) answer /metrics, /healthz and /readyz;
Rasa is ready only with a model loaded; every action call is timed and logged under the id of
the guest message it serves."""

from __future__ import annotations

import logging

import aiohttp

from bot.actions_main import action_call_of, instrument_action_server
from bot.rasa_main import add_ops_to_rasa_app
from bot.wecom.db import get_engine
from tests.ops.helpers import parse, sample
from tests.ops.test_logs import capture_json, lines_of
from tests.wecom.helpers import serve_sanic


class ReadyAgent:
    def is_ready(self):
        return True


async def test_rasa_is_ready_only_with_a_model_and_a_database(db_url):
    from sanic import Sanic

    def factory(name):
        app = Sanic(name)
        add_ops_to_rasa_app(app, get_engine(db_url))
        return app

    async with serve_sanic(factory) as (app, base), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["service"] == "rasa"
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 503
            assert (await resp.json())["checks"] == {"database": "ok", "model": "no model loaded"}
        app.ctx.agent = ReadyAgent()
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200 and (await resp.json())["ready"] is True
        async with http.get(f"{base}/metrics") as resp:
            values = parse(await resp.text())
            assert values["concierge_inbox_pending"] == 0 and values["concierge_outbox_dead"] == 0


def tracker(message_id):
    return {
        "sender_id": "kf:wm_probe",
        "slots": {},
        "latest_message": {
            "text": "加一床被子",
            "intent": {"name": "request_item", "confidence": 0.9},
            "entities": [],
            "message_id": message_id,
        },
        "events": [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    }


async def test_action_calls_are_timed_and_logged_with_the_message_id(db_url):
    import rasa_sdk.endpoint as endpoint

    def factory(name):
        app = endpoint.create_app("tests.ops.sample_actions")
        instrument_action_server(app, get_engine(db_url))
        return app

    stream, handler = capture_json("actions")
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    before = sample("concierge_action_seconds_count", action="action_ops_probe", status="200")
    missing = sample("concierge_action_seconds_count", action="(not found)", status="404")
    try:
        async with serve_sanic(factory) as (_, base), aiohttp.ClientSession() as http:
            body = {
                "next_action": "action_ops_probe",
                "sender_id": "kf:wm_probe",
                "tracker": tracker("MSGID-42"),
                "domain": {},
                "version": "3.6.21",
            }
            async with http.post(f"{base}/webhook", json=body) as resp:
                assert resp.status == 200
                assert (await resp.json())["responses"][0]["text"] == "好的"
            body["next_action"] = "action_made_up"
            async with http.post(f"{base}/webhook", json=body) as resp:
                assert resp.status == 404
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    assert (
        sample("concierge_action_seconds_count", action="action_ops_probe", status="200")
        == before + 1
    )
    assert (
        sample("concierge_action_seconds_count", action="(not found)", status="404") == missing + 1
    )
    mine = [line["message"] for line in lines_of(stream) if line["correlation_id"] == "MSGID-42"]
    assert "probe ran for kf:wm_probe" in mine
    assert any(m.startswith("action action_ops_probe answered 200") for m in mine)


def test_deflated_and_broken_action_calls():
    import json
    import zlib

    call = {"next_action": "a", "tracker": {}}
    packed = zlib.compress(json.dumps(call).encode())
    assert action_call_of(packed, "deflate") == call
    assert action_call_of(b"{not json", None) == {}
    assert action_call_of(b"garbage", "deflate") == {}
    assert action_call_of(b"[1, 2]", None) == {}

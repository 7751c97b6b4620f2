"""JSON logs with a correlation id: every line about one guest message -- stored by the intake,
handled by the inbox worker through Rasa, the reply sent -- carries that message's WeCom msgid."""

from __future__ import annotations

import io
import json
import logging

from bot.ops.logs import CorrelationFilter, JsonFormatter, correlation, correlation_of
from tests.wecom.helpers import FakeRasa, free_port, run_sanic
from tests.wecom.test_intake_server import env_post, run_intake, wait_until
from connectors.wecom import WeComInput


def capture_json(service="test"):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(CorrelationFilter())
    handler.setFormatter(JsonFormatter(service))
    handler.setLevel(logging.INFO)
    return stream, handler


def lines_of(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_one_message_is_followed_from_callback_to_reply(env):
    stream, handler = capture_json()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        rasa_port = free_port()
        rasa = FakeRasa()
        channel = WeComInput({}, services=env.services(), sweep_interval_s=0)
        async with run_sanic(channel, rasa, rasa_port):
            async with run_intake(env, f"http://127.0.0.1:{rasa_port}/webhooks/wecom/inbox"):
                for text in ("有停车位吗", "早餐在几楼"):
                    await env_post(
                        env, "/_sandbox/guest/kf", {"external_userid": "wm_cid", "text": text}
                    )
                await wait_until(lambda: len(rasa.texts()) == 2, env)
                await channel.wait_idle()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    msgids = [m.message_id for m in rasa.messages]
    assert len(set(msgids)) == 2 and all(msgids)
    lines = lines_of(stream)
    for msgid in msgids:
        mine = [line["message"] for line in lines if line["correlation_id"] == msgid]
        assert any("stored as inbox row" in m for m in mine), mine  # intake
        assert any("/cgi-bin/kf/send_msg" in m and "sent" in m for m in mine), mine  # reply
        assert any(m.startswith("inbox row") and "handled (done)" in m for m in mine), mine
    other = [line for line in lines if line["correlation_id"] not in msgids]
    assert not any("stored as inbox row" in line["message"] for line in other)
    assert all(line["service"] == "test" and line["ts"] for line in lines)


def test_json_lines_carry_extra_fields_and_exceptions():
    stream, handler = capture_json("worker")
    log = logging.getLogger("tests.ops.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        with correlation("msg-1"):
            log.warning("客人消息 %s", "已收到", extra={"inbox_id": 7})
        try:
            raise ValueError("坏数据")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    first, second = lines_of(stream)
    assert first["message"] == "客人消息 已收到" and first["correlation_id"] == "msg-1"
    assert first["inbox_id"] == 7 and first["level"] == "WARNING" and first["service"] == "worker"
    assert second["correlation_id"] is None and "ValueError: 坏数据" in second["exc"]


def test_correlation_prefers_the_wecom_msgid():
    assert correlation_of("kf:abc", {"msgid": "MSG1"}) == "MSG1"
    assert correlation_of("app:u1:123:enter_agent", {}) == "app:u1:123:enter_agent"


def test_configure_logging_replaces_handlers_and_honours_the_level(capsys):
    from bot.ops.logs import configure_logging

    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        configure_logging("intake", "json", "WARNING")
        assert len(root.handlers) == 1
        noisy = logging.getLogger("tests.ops.noisy")
        noisy.setLevel(logging.DEBUG)  # like jieba: its own lower level
        noisy.debug("not shown")
        with correlation("m-9"):
            noisy.warning("shown")
        lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]
        assert [(x["message"], x["correlation_id"], x["service"]) for x in lines] == [
            ("shown", "m-9", "intake")
        ]
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)

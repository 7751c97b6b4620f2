"""Two replicas of the WeCom channel (the Rasa-side inbox workers) on one PostgreSQL inbox and
one Redis: a guest's two messages delivered to different replicas are handled in order, once,
and never at the same time -- the inbox lease (oldest unfinished row first) serialises a sender
across processes without sticky routing.

What this does not cover: real Rasa servers (FakeRasa stands in for the agent; Rasa's own Redis
lock store orders turns inside Rasa as well)."""

from __future__ import annotations

import asyncio

import pytest

from bot.crm.db import upgrade
from bot.wecom.db import Database, get_engine
from bot.wecom.redis_conn import get_redis
from connectors.wecom import WeComInput
from tests.conftest import require_service
from tests.wecom.helpers import FakeRasa, free_port, kf_texts, run_sanic
from tests.wecom.test_intake_server import env_post, wait_until

GUEST = "wm_two_replicas"


class SharedTurns:
    """Records across both replicas which turns ran, and how many ran at once for the guest."""

    def __init__(self) -> None:
        self.active = 0
        self.max_active = 0
        self.handled = []

    def rasa(self, name: str, delay_s: float) -> FakeRasa:
        async def reply(message) -> None:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                await asyncio.sleep(delay_s)
                self.handled.append((name, message.text))
                await message.output_channel.send_text_message(
                    message.sender_id, f"收到：{message.text}"
                )
            finally:
                self.active -= 1

        return FakeRasa(reply=reply)


@pytest.fixture
def shared_stores(pg_database_url):
    require_service("Redis", "127.0.0.1", 6379)
    upgrade(pg_database_url)
    return pg_database_url, "redis://127.0.0.1:6379/15"


async def test_two_messages_of_one_guest_on_two_replicas_are_handled_in_order_once(
    env, shared_stores
):
    pg_url, redis_url = shared_stores
    redis = get_redis(redis_url)
    await redis.flushdb()
    db = Database(get_engine(pg_url))
    turns = SharedTurns()
    port_a, port_b = free_port(), free_port()
    replica_a = WeComInput({}, services=env.services(db=db, redis=redis), sweep_interval_s=0)
    replica_b = WeComInput({}, services=env.services(db=db, redis=redis), sweep_interval_s=0)
    async with (
        run_sanic(replica_a, turns.rasa("a", 0.8), port_a),
        run_sanic(replica_b, turns.rasa("b", 0.0), port_b),
    ):
        env.state.connector_url = f"http://127.0.0.1:{port_a}"  # the balancer picks A ...
        first = await env_post(
            env, "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "我想续住一晚"}
        )
        await wait_until(lambda: turns.active == 1, env)  # A is in the guest's first turn
        env.state.connector_url = f"http://127.0.0.1:{port_b}"  # ... then B
        second = await env_post(
            env, "/_sandbox/guest/kf", {"external_userid": GUEST, "text": "还要加一张床"}
        )
        assert first["delivery"]["status"] == 200 and second["delivery"]["status"] == 200
        await wait_until(lambda: len(turns.handled) == 2, env)
        # both replicas sweep once more: nothing is left, nothing runs again
        await replica_a.sweep()
        await replica_b.sweep()
        await replica_a.wait_idle()
        await replica_b.wait_idle()
    assert [text for _, text in turns.handled] == ["我想续住一晚", "还要加一张床"]
    assert turns.max_active == 1  # never two turns of one guest at once
    rows = replica_a.services.inbox.all_sync(f"kf:{GUEST}")
    assert [(r.status, r.attempts) for r in rows] == [("done", 1), ("done", 1)]
    assert kf_texts(await env.calls()) == ["收到：我想续住一晚", "收到：还要加一张床"]
    await redis.flushdb()

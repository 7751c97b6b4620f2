"""Sticky ordering without stickiness, with real `rasa run` processes: two Rasa servers share the
PostgreSQL tracker store and the Redis lock store (and publish to RabbitMQ); one guest's two
messages go to the two replicas at once, the second while the first is still being answered. Each
is handled once, in the order they arrived, neither turn interleaved with the other, and the
event stream holds each event once."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

from bot.settings import PROJECT_ROOT
from tests.conftest import IN_CI, require_service

pytestmark = [pytest.mark.rasa_model, pytest.mark.postgres, pytest.mark.redis]

MODEL = PROJECT_ROOT / "models" / "concierge.tar.gz"
FIRST, SECOND = "早餐几点开始", "有儿童乐园吗"
TRIALS = 6


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    if not MODEL.exists():
        (pytest.fail if IN_CI else pytest.skip)(f"no trained model at {MODEL}")
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379), ("RabbitMQ", 5672)):
        require_service(name, "127.0.0.1", port)
    from bench.stack import Stack

    stack = Stack(
        "order",
        MODEL,
        tmp_path_factory.mktemp("replicas"),
        wecom=False,
        pg=True,
        product_entry=True,
        rasa_replicas=2,
        events=True,
    )
    senders = [f"bench-r{i:04d}" for i in range(TRIALS)]
    try:
        stack.start(senders)
        yield stack, senders
    finally:
        stack.stop()


async def _post(session, url: str, sender: str, text: str) -> dict:
    sent = time.monotonic()
    async with session.post(
        f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}
    ) as resp:
        body = await resp.json()
        return {"status": resp.status, "replies": body, "sent": sent, "done": time.monotonic()}


async def _pair(a: str, b: str, sender: str) -> tuple[dict, dict]:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        first = asyncio.create_task(_post(session, a, sender, FIRST))
        await asyncio.sleep(0.02)  # the second arrives while the first is being answered
        second = asyncio.create_task(_post(session, b, sender, SECOND))
        return await first, await second


def _tracker(url: str, sender: str) -> list[dict]:
    from bench.stack import AUTH_TOKEN

    with urllib.request.urlopen(
        f"{url}/conversations/{sender}/tracker?token={AUTH_TOKEN}", timeout=30
    ) as resp:
        return json.loads(resp.read())["events"]


def test_two_messages_of_one_guest_at_two_replicas_are_handled_in_order_once(replicas):
    stack, senders = replicas
    urls = [stack.url_of(name) for name in stack.rasa_names]
    for i, sender in enumerate(senders):
        a, b = urls[i % 2], urls[(i + 1) % 2]  # which replica gets the first one alternates
        first, second = asyncio.run(_pair(a, b, sender))
        assert first["status"] == second["status"] == 200
        assert first["replies"] and second["replies"], (first, second)
        # the scenario really was concurrent: the second was sent before the first was answered
        assert second["sent"] < first["done"]

        events = _tracker(urls[i % 2], sender)
        assert events == _tracker(urls[(i + 1) % 2], sender)  # one conversation, shared
        said = [e["text"] for e in events if e["event"] == "user"]
        assert said == [FIRST, SECOND]  # each once, in arrival order
        # the first turn finished (its replies, then listening) before the second began
        kinds = [
            (e["event"], e.get("name"))
            for e in events
            if e["event"] in ("user", "bot") or e.get("name") == "action_listen"
        ]
        at_second = kinds.index(("user", None), kinds.index(("user", None)) + 1)
        before = kinds[:at_second]
        assert ("bot", None) in before and before[-1] == ("action", "action_listen"), kinds
        assert ("bot", None) in kinds[at_second:]
        bot_texts = [e.get("text") for e in events if e["event"] == "bot"]
        assert bot_texts[: len(first["replies"])] == [r.get("text") for r in first["replies"]]


def test_the_event_stream_holds_each_event_of_both_replicas_once(replicas):
    from sqlalchemy import create_engine, func, select

    from bot.events.models import ConversationEvent

    stack, senders = replicas
    table = ConversationEvent.__table__
    engine = create_engine(stack.database_url, future=True)
    try:
        expected = {s: len(_tracker(stack.url_of("rasa"), s)) for s in senders}
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:
                counts = dict(
                    conn.execute(
                        select(table.c.sender_id, func.count())
                        .where(table.c.sender_id.in_(senders))
                        .group_by(table.c.sender_id)
                    ).all()
                )
                user_rows = conn.execute(
                    select(table.c.sender_id, table.c.data)
                    .where(table.c.sender_id.in_(senders), table.c.type_name == "user")
                    .order_by(table.c.id)
                ).all()
            if counts == expected or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    # Rasa's tracker adds nothing the broker did not carry, and nothing twice
    assert counts == expected
    for sender in senders:
        assert [json.loads(d)["text"] for s, d in user_rows if s == sender] == [FIRST, SECOND]

"""RabbitMQ for the event-stream tests: the machine's broker (127.0.0.1:5672, guest/guest), a
queue of the test's own, deleted after it."""

from __future__ import annotations

import asyncio
import json
import uuid

RABBIT = ("127.0.0.1", 5672)


def new_queue_name() -> str:
    return f"test_events_{uuid.uuid4().hex[:12]}"


async def _with_channel(work):
    import aio_pika

    connection = await aio_pika.connect(
        host=RABBIT[0], port=RABBIT[1], login="guest", password="guest"
    )
    try:
        return await work(await connection.channel())
    finally:
        await connection.close()


def publish(queue: str, *bodies) -> None:
    """Persistent messages straight into `queue` (dicts as JSON, bytes as they are)."""
    import aio_pika

    async def work(channel):
        await channel.declare_queue(queue, durable=True)
        for body in bodies:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            await channel.default_exchange.publish(
                aio_pika.Message(raw, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
            )

    asyncio.run(_with_channel(work))


def depth(queue: str) -> int:
    """Ready messages in `queue` (0 if it does not exist)."""

    async def work(channel):
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except Exception:
            return 0
        return declared.declaration_result.message_count

    return asyncio.run(_with_channel(work))


def delete_queue(*names: str) -> None:
    async def work(channel):
        for name in names:
            for queue in (name, f"{name}.dead"):
                await channel.queue_delete(queue)
            await channel.exchange_delete(name)  # tests name their exchange after the queue

    try:
        asyncio.run(_with_channel(work))
    except Exception:  # the broker is gone: nothing to clean
        pass

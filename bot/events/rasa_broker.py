"""Rasa's pika event broker, made to survive a RabbitMQ restart (applied by `bot.rasa_main`,
never at import time): a durable exchange, and re-sending what it could not publish.

Rasa 3.6 keeps an event it failed to publish in memory and sends it again only from the
connection's *reconnect* callback. Measured with `make bench-scale` (restart RabbitMQ under 50
guests): publishing failed for ~25 s after the broker came back, and the ~3,000 events of that
spell stayed in memory for good -- missing from the reports' table, although RabbitMQ was long
back. Here every successful publish, and a 5 s timer, also send the kept events, oldest first, so
they arrive once the broker takes messages again. (An event kept in memory is still lost if that
Rasa process dies before the broker returns: the tracker store keeps it regardless.)
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)

RETRY_EVERY_S = 5.0


def durable_exchange() -> None:
    """Rasa declares its fanout exchange non-durable: a RabbitMQ restart deletes it, and with it
    the binding to the durable events queue. Measured (`make bench-scale`, restart RabbitMQ):
    publishing failed for ~11 s, then "succeeded" into an exchange nothing was bound to again --
    ~3,700 events dropped without an error. A durable exchange keeps the exchange, the queue and
    their binding across restarts (`concierge events consume` declares it the same way). An
    installation that ran the stock broker must delete its old exchange once (docs/OPERATIONS.md):
    RabbitMQ refuses to redeclare an exchange with another durability."""
    import aio_pika
    from rasa.core.brokers.pika import PikaEventBroker

    if getattr(PikaEventBroker._set_up_exchange, "_concierge_durable", False):
        return

    async def _set_up_exchange(self, channel):
        exchange = await channel.declare_exchange(
            self.exchange_name, type=aio_pika.ExchangeType.FANOUT, durable=True
        )
        await asyncio.gather(*(self._bind_queue(name, channel, exchange) for name in self.queues))
        return exchange

    _set_up_exchange._concierge_durable = True
    PikaEventBroker._set_up_exchange = _set_up_exchange


def apply() -> None:
    durable_exchange()
    deliver_kept_events()


def deliver_kept_events() -> None:
    from rasa.core.brokers.pika import PikaEventBroker

    if getattr(PikaEventBroker._publish, "_concierge_retries", False):
        return
    stock_publish = PikaEventBroker._publish
    stock_connect = PikaEventBroker.connect

    async def _publish(self, event, headers=None) -> None:
        kept = len(self._unpublished_events)
        await stock_publish(self, event, headers)
        # a publish that went through (nothing new was kept): the broker is back
        if kept and len(self._unpublished_events) <= kept:
            _flush(self)

    async def connect(self) -> None:
        await stock_connect(self)
        if getattr(self, "_concierge_retry_task", None) is None:
            self._concierge_retry_task = asyncio.get_running_loop().create_task(_retry(self))

    _publish._concierge_retries = True
    PikaEventBroker._publish = _publish
    PikaEventBroker.connect = connect


def _flush(broker) -> None:
    kept = list(broker._unpublished_events)
    broker._unpublished_events.clear()
    if kept:
        log.info("event broker: sending %d kept events", len(kept))
    for event in kept:  # each goes through _publish again: kept again if it fails again
        broker.publish(event)


async def _retry(broker) -> None:
    while True:
        await asyncio.sleep(RETRY_EVERY_S)
        try:
            if broker._unpublished_events and broker.is_ready():
                _flush(broker)
        except Exception:  # the timer must outlive any one failure
            log.exception("event broker: retrying kept events failed")

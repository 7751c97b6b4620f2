"""`concierge events consume`: Rasa's tracker events from RabbitMQ into `conversation_events`.

Rasa's pika event broker (endpoints.production.yml `event_broker`) publishes every new tracker
event to the fanout exchange EVENT_BROKER_EXCHANGE (Rasa's default `rasa-exchange`), which copies
it into the durable queue EVENT_BROKER_QUEUE; the message is persistent. This consumer declares the same exchange and
queue (so it may start before Rasa, and nothing published meanwhile is lost) and, one delivery at
a time in queue order:

- stores it (bot.events.store, insert-or-ignore by the event's key) and only then acknowledges:
  a consumer killed before the ack gets the delivery again after its restart, and the key makes
  the second insert a no-op;
- a delivery that is not a tracker event goes to the durable queue `<queue>.dead` (published
  with a broker confirm, then acknowledged: logged, kept for `concierge events dead`, never
  retried and never blocking the queue);
- when the database is away, it keeps the delivery and retries the insert with a growing pause
  (order is kept; RabbitMQ holds the rest).

One consumer per queue keeps `conversation_events.id` in publication order, which the NLU inbox
collector's cursor relies on. Its /metrics, /healthz and /readyz listen on EVENTS_METRICS_PORT.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Optional

from prometheus_client import Counter

from bot.events.store import EventStore, MalformedEvent

log = logging.getLogger(__name__)

EXCHANGE = "rasa-exchange"  # rasa.core.brokers.pika.RABBITMQ_EXCHANGE, Rasa's default
DEFAULT_QUEUE = "concierge_events"
RETRY_PAUSES = (0.5, 1, 2, 5, 10)
RECONNECT_S = 2.0
CONNECT_TIMEOUT_S = 10.0

EVENTS = Counter(
    "concierge_events_consumed",
    "Tracker events taken from the broker, by outcome " "(stored, duplicate, dead)",
    ["outcome"],
)


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    username: str
    password: str
    queue: str
    exchange: str = EXCHANGE

    @classmethod
    def from_env(cls) -> "BrokerSettings":
        """EVENT_BROKER_* as bot.core.settings reads them (where every variable is read)."""
        from bot.settings import load_event_broker_settings

        env = load_event_broker_settings()
        return cls(
            host=env.host,
            port=env.port,
            username=env.username,
            password=env.password,
            queue=env.queue,
            exchange=env.exchange,
        )

    @property
    def dead_queue(self) -> str:
        return f"{self.queue}.dead"


class EventConsumer:
    def __init__(self, store: EventStore, broker: BrokerSettings, *, prefetch: int = 100):
        self.store = store
        self.broker = broker
        self.prefetch = prefetch
        self._connection = None
        self._channel = None
        self.stopping = asyncio.Event()

    async def connect(self):
        import aio_pika

        # A plain connection, and our own reconnect loop in run(): after a RabbitMQ restart
        # (stop_app/start_app) the stream stopped with aio-pika's robust reconnection
        # (make bench-scale, docs/PERFORMANCE.md run 3; that this was the cause is not shown).
        from yarl import URL

        # named, so an operator (and the tests) can tell this connection apart in RabbitMQ
        url = URL.build(
            scheme="amqp",
            host=self.broker.host,
            port=self.broker.port,
            user=self.broker.username,
            password=self.broker.password,
            path="/",
            query={"name": f"concierge-events:{self.broker.queue}"},
        )
        self._connection = await aio_pika.connect(url)
        self._channel = await self._connection.channel()  # publisher confirms on (aio-pika)
        await self._channel.set_qos(prefetch_count=self.prefetch)
        # As Rasa declares them under bot.rasa_main (bot/events/rasa_broker.py): durable, so
        # the exchange and its binding to the queue survive a RabbitMQ restart.
        exchange = await self._channel.declare_exchange(
            self.broker.exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await self._channel.declare_queue(self.broker.queue, durable=True)
        await queue.bind(exchange, "")
        await self._channel.declare_queue(self.broker.dead_queue, durable=True)
        return queue

    async def close(self) -> None:
        if self._connection is not None:
            try:
                await self._connection.close()
            except Exception:  # already gone
                pass
            self._connection = None

    def _connected(self) -> bool:
        # The channel too: after a RabbitMQ restart the broker closes the channel while the
        # connection object may still read as open, and the consumer would wait forever.
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def run(
        self, max_events: Optional[int] = None, idle_exit_s: Optional[float] = None
    ) -> int:
        """Consume until stopped (or `max_events` handled, or nothing came for `idle_exit_s`);
        returns how many deliveries were handled. A lost connection is made again (every
        RECONNECT_S); the first connection must succeed (a supervisor restarts us otherwise)."""
        handled, first = 0, True
        while not self.stopping.is_set():
            try:
                # bounded: a broker still starting can accept the socket and never finish the
                # handshake (the stream stopped after a RabbitMQ restart; the queue held it all)
                queue = await asyncio.wait_for(self.connect(), timeout=CONNECT_TIMEOUT_S)
            except Exception as exc:
                await self.close()
                if first:
                    raise
                log.warning(
                    "events: RabbitMQ unreachable (%s); retrying in %.0f s",
                    type(exc).__name__,
                    RECONNECT_S,
                )
                await self._pause(RECONNECT_S)
                continue
            if not first:
                log.info("events: reconnected to RabbitMQ")
            first = False
            # aio-pika hands deliveries to a callback; they wait here and are handled one at a
            # time, in order. (Cancelling aio-pika's queue iterator on a timeout would close it.)
            pending: asyncio.Queue = asyncio.Queue()
            await queue.consume(pending.put)
            try:
                while not self.stopping.is_set():
                    if not self._connected():
                        log.warning("events: connection to RabbitMQ lost; reconnecting")
                        break
                    try:
                        message = await asyncio.wait_for(pending.get(), timeout=idle_exit_s or 1.0)
                    except asyncio.TimeoutError:
                        if idle_exit_s:
                            return handled
                        continue
                    outcome = await self.handle(message)
                    if outcome is None:
                        break  # the channel died under this delivery: it comes again
                    if not outcome:
                        return handled  # stopping while the database was away
                    handled += 1
                    if max_events is not None and handled >= max_events:
                        return handled
            finally:
                await self.close()  # unacknowledged deliveries go back to the queue
        return handled

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def handle(self, message) -> Optional[bool]:
        """Store, dead-letter or keep retrying one delivery; True once it was acknowledged,
        False when stopping while the database was away, None when the channel died before the
        acknowledgement (RabbitMQ delivers it again: the stored row makes that a no-op)."""
        try:
            return await self._handle(message)
        except Exception as exc:
            if self._connected() and not getattr(message.channel, "is_closed", False):
                raise
            log.warning("events: delivery not acknowledged, channel gone (%s)", type(exc).__name__)
            return None

    async def _handle(self, message) -> bool:
        attempt = 0
        while True:
            try:
                stored = await asyncio.to_thread(self.store.record, message.body)
            except MalformedEvent as exc:
                await self.dead_letter(message, str(exc))
                EVENTS.labels("dead").inc()
                await message.ack()
                return True
            except Exception as exc:  # the database is away: keep the delivery, try again
                pause = RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)]
                attempt += 1
                log.warning(
                    "events: storing failed (%s); retrying in %.1f s", type(exc).__name__, pause
                )
                try:
                    await asyncio.wait_for(self.stopping.wait(), timeout=pause)
                    return False
                except asyncio.TimeoutError:
                    continue
            EVENTS.labels("stored" if stored else "duplicate").inc()
            await message.ack()
            return True

    async def dead_letter(self, message, reason: str) -> None:
        import aio_pika

        log.error(
            "events: dead-lettered a delivery to %s: %s (%d bytes)",
            self.broker.dead_queue,
            reason,
            len(message.body),
        )
        headers = dict(message.headers or {})
        headers["x-concierge-error"] = reason[:200]
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                message.body, headers=headers, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            ),
            routing_key=self.broker.dead_queue,
        )

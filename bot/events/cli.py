"""`concierge events consume`: the event-stream consumer (a Procfile.production process).
`concierge events dead [--json]`: deliveries that were not tracker events (dead-lettered), with
why; `concierge events requeue`: put them back on the events queue (after a fix).

The listing shows why a delivery was refused and its size, never its body (it may hold a guest's
words)."""

from __future__ import annotations

import asyncio
import json
import sys

EXIT_OK, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 0, 1, 2


def register(subparsers) -> None:
    events = subparsers.add_parser("events", help="Rasa's tracker events from RabbitMQ")
    sub = events.add_subparsers(dest="events_command", required=True)
    consume = sub.add_parser("consume", help="store tracker events for the reports (a process)")
    consume.add_argument("--max-events", type=int, help="stop after this many (tests, backfill)")
    consume.add_argument(
        "--idle-exit",
        type=float,
        metavar="S",
        help="stop when nothing arrived for S seconds (tests, backfill)",
    )
    consume.add_argument(
        "--metrics-port",
        type=int,
        help="/metrics, /healthz, /readyz (default EVENTS_METRICS_PORT, 9106; " "0: off)",
    )
    consume.add_argument(
        "--no-backfill",
        action="store_true",
        help="do not settle events the broker never delivered from the tracker store",
    )
    consume.set_defaults(func=_consume)
    backfill = sub.add_parser(
        "backfill",
        help="one pass: store tracker events the broker never delivered (from the tracker store)",
    )
    backfill.add_argument(
        "--grace",
        type=float,
        metavar="S",
        help="only rows older than S seconds (default EVENTS_BACKFILL_GRACE_S, 60)",
    )
    backfill.set_defaults(func=_backfill)
    dead = sub.add_parser("dead", help="list the dead-lettered deliveries")
    dead.add_argument("--json", action="store_true", help="machine-readable output")
    dead.set_defaults(func=_dead)
    sub.add_parser(
        "requeue", help="move every dead-lettered delivery back to the events queue"
    ).set_defaults(func=_requeue)


def _consume(args) -> int:
    import signal

    from bot.crm.db import make_engine
    from bot.events.backfill import follow
    from bot.events.consumer import BrokerSettings, EventConsumer
    from bot.events.store import EventStore
    from bot.ops.http import build, setup_logging, start_server
    from bot.settings import get_settings, load_event_broker_settings

    settings = get_settings()
    setup_logging("events", settings)
    engine = make_engine(args.database_url)
    consumer = EventConsumer(EventStore(engine), BrokerSettings.from_env())
    broker_env = load_event_broker_settings()
    port = args.metrics_port if args.metrics_port is not None else broker_env.metrics_port
    interval = 0.0 if args.no_backfill else broker_env.backfill_interval_s

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, consumer.stopping.set)
        exposition, readiness = build("events", engine, queue_depths=False)
        runner = await start_server(exposition, readiness, "127.0.0.1", port)
        filler = backfill = None
        if interval > 0:  # events a killed Rasa committed but never published
            backfill = _backfill_for(engine, broker_env.backfill_grace_s)
            filler = asyncio.create_task(follow(backfill, interval, consumer.stopping))
        try:
            return await consumer.run(max_events=args.max_events, idle_exit_s=args.idle_exit)
        finally:
            if filler is not None:
                filler.cancel()
                backfill.tracker.close()
            if runner is not None:
                await runner.cleanup()

    try:
        n = asyncio.run(main())
    except OSError as exc:  # RabbitMQ not reachable at start: a supervisor restarts us
        print(f"concierge: event broker unreachable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        engine.dispose()
    print(f"handled {n} event deliveries", file=sys.stderr)
    return EXIT_OK


def _backfill_for(engine, grace_s: float):
    from bot.events.backfill import EventBackfill
    from bot.settings import get_settings
    from bot.tracker_events import TrackerEvents

    # TRACKER_DATABASE_URL: the database Rasa's tracker store writes (endpoints.production.yml)
    return EventBackfill(
        engine, TrackerEvents(get_settings().tracker_database_url or None), grace_s=grace_s
    )


def _backfill(args) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.crm.db import make_engine
    from bot.settings import load_event_broker_settings

    grace = args.grace if args.grace is not None else load_event_broker_settings().backfill_grace_s
    engine = make_engine(args.database_url)
    backfill = _backfill_for(engine, grace)
    try:
        done = backfill.run_once()
    except SQLAlchemyError as exc:
        print(f"concierge: database unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        backfill.tracker.close()
        engine.dispose()
    print(
        f"read {done.read} tracker events, stored {done.stored} the broker never delivered; "
        f"cursor at {done.cursor}"
    )
    return EXIT_OK


async def _dead_letters(move: bool) -> list[dict]:
    """Every delivery in the dead queue; moved back to the events queue when `move`, else left
    where it was (unacknowledged reads go back when the channel closes)."""
    import aio_pika

    from bot.events.consumer import BrokerSettings

    broker = BrokerSettings.from_env()
    connection = await aio_pika.connect(
        host=broker.host, port=broker.port, login=broker.username, password=broker.password
    )
    found = []
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(broker.dead_queue, durable=True)
        while True:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = dict(message.headers or {})
            reason = headers.pop("x-concierge-error", "")
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            found.append({"bytes": len(message.body), "reason": reason})
            if move:
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        message.body,
                        headers=headers,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=broker.queue,
                )
                await message.ack()
    finally:
        await connection.close()
    return found


def _dead(args) -> int:
    try:
        found = asyncio.run(_dead_letters(move=False))
    except OSError as exc:
        print(f"concierge: event broker unreachable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
    else:
        for i, row in enumerate(found, 1):
            print(f"{i}\t{row['bytes']} bytes\t{row['reason']}")
        print(f"{len(found)} dead-lettered", file=sys.stderr)
    return EXIT_OK


def _requeue(args) -> int:
    try:
        found = asyncio.run(_dead_letters(move=True))
    except OSError as exc:
        print(f"concierge: event broker unreachable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"requeued {len(found)}")
    return EXIT_OK

"""`concierge outbox dead [--json]` and `concierge outbox requeue ID... | --all`: the WeCom
sends that gave up (wrong recipient, an expired 48 h window, WeCom down past every retry), and
sending them again once the cause is fixed. A requeued row is sent by the next outbox sweep (the
Rasa server's every 10 s, the worker's) with a fresh set of attempts.

The listing shows where a send went and why it failed, never what it said (the body holds the
guest's words: read it through the audited guest commands)."""

from __future__ import annotations

import json
import re
import sys

EXIT_OK, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 0, 1, 2


def register(subparsers) -> None:
    outbox = subparsers.add_parser("outbox", help="WeCom sends that gave up (dead letters)")
    sub = outbox.add_subparsers(dest="outbox_command", required=True)
    dead = sub.add_parser("dead", help="list the dead sends")
    dead.add_argument("--json", action="store_true", help="machine-readable output")
    dead.set_defaults(func=_dead)
    requeue = sub.add_parser("requeue", help="send dead sends again (next outbox sweep)")
    requeue.add_argument("ids", nargs="*", type=int, metavar="ID")
    requeue.add_argument("--all", action="store_true", help="every dead send")
    requeue.set_defaults(func=_requeue)


def _outbox(args):
    from bot.wecom.db import Database, get_engine
    from bot.wecom.delivery.outbox import Outbox

    return Outbox(Database(get_engine(args.database_url)))


def safe_path(path: str) -> str:
    """A send's path without secrets in its query (group robot webhook keys, tokens)."""
    return re.sub(r"([?&](?:key|access_token)=)[^&]+", r"\1***", path)


def _dead(args) -> int:
    try:
        items = _outbox(args).list_sync("dead")
    except Exception as exc:
        print(f"concierge: the outbox is unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    rows = [
        {
            "id": i.id,
            "app": i.app,
            "path": safe_path(i.path),
            "recipient": i.recipient,
            "attempts": i.attempts,
            "errcode": i.errcode,
            "errmsg": i.errmsg,
        }
        for i in items
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not rows:
        print("no dead sends")
        return EXIT_OK
    for r in rows:
        print(
            f"{r['id']:>8}  {r['app']:<5} {r['path']:<40} {r['recipient'] or '-':<32} "
            f"attempts={r['attempts']} errcode={r['errcode']} {r['errmsg'] or ''}"
        )
    print(f"{len(rows)} dead send(s); `concierge outbox requeue ID` sends one again")
    return EXIT_OK


def _requeue(args) -> int:
    if bool(args.ids) == bool(args.all):
        print("concierge: name the dead sends to requeue (IDs) or --all, not both", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        outcome = _outbox(args).requeue_sync(None if args.all else list(args.ids))
    except Exception as exc:
        print(f"concierge: the outbox is unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    for item_id, result in outcome.items():
        print(f"{item_id}: {result}")
    requeued = sum(1 for r in outcome.values() if r == "requeued")
    print(f"{requeued} send(s) requeued")
    if args.all:
        return EXIT_OK
    return EXIT_OK if requeued == len(outcome) else EXIT_NOT_FOUND

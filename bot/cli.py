"""`concierge`: the command-line tool for staff and scripts.

    concierge db upgrade                 migrate the CRM database to the newest revision
    concierge db current                 print the revision the database is at
    concierge demo load                  load/refresh the demo guests (never in production)
    concierge guest show SENDER_ID [--json]
    concierge guest list [--demo] [--json]
    concierge worker | sla-report | sla-policy check   (bot/paging/cli.py)

`--database-url URL` (before the command) overrides DATABASE_URL.

Adding commands: write a function (or a module with a function) `register(subparsers)` that adds
its parser(s) and sets `func=handler` via `set_defaults`; a handler takes the parsed args and
returns the exit code. List the function in `COMMANDS` or the module's dotted path in
`COMMAND_MODULES` (imported only when the CLI runs). Exit codes: 0 ok, 1 the thing asked about
does not exist or was refused, 2 the database or configuration is not usable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import importlib
import json
import sys
from typing import Callable, Sequence

EXIT_OK, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 0, 1, 2

# Modules with `register(subparsers)`, e.g. "bot.paging.cli". Imported lazily by build_parser().
COMMAND_MODULES: list[str] = [
    "bot.paging.cli",
    "bot.preflight_cli",
    "bot.crm.keys_cli",
    "bot.training.cli",
    "bot.marketing.cli",
    "bot.bookings.cli",
    "bot.console.cli",
    "bot.ops.outbox_cli",
    "bot.events.cli",
    "bot.spool_cli",
]


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (containers): still audit, as an unknown CLI user
        return "cli:unknown"


def subcommands_of(subparsers, name: str):
    """The sub-command group of an existing command (e.g. "guest"), so a module can add
    `concierge guest <its command>` from its own `register(subparsers)`."""
    parser = subparsers.choices[name]
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _store(args):
    from bot.crm.store import CRMStore

    return CRMStore(args.database_url)


def _fail(message: str, code: int) -> int:
    print(f"concierge: {message}", file=sys.stderr)
    return code


# ---- db -------------------------------------------------------------------------------------


def register_db(subparsers) -> None:
    db = subparsers.add_parser("db", help="CRM database schema")
    sub = db.add_subparsers(dest="db_command", required=True)
    up = sub.add_parser("upgrade", help="apply the Alembic migrations")
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(func=_db_upgrade)
    sub.add_parser("current", help="print the current revision").set_defaults(func=_db_current)


def _db_upgrade(args) -> int:
    from bot.crm.db import upgrade

    print(f"CRM database at revision {upgrade(args.database_url, args.revision)}")
    return EXIT_OK


def _db_current(args) -> int:
    from bot.crm.db import current_revision, head_revision

    current, head = current_revision(args.database_url), head_revision()
    note = "" if current == head else f" (newest is {head}: run `concierge db upgrade`)"
    print(f"{current or 'empty (no migrations applied)'}{note}")
    return EXIT_OK


# ---- demo -----------------------------------------------------------------------------------


def register_demo(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="demo data")
    sub = demo.add_subparsers(dest="demo_command", required=True)
    load = sub.add_parser("load", help="load or refresh the demo guests (migrates first)")
    load.add_argument("--file", help="demo YAML (default: data/demo/demo.yml)")
    load.add_argument("--no-upgrade", action="store_true", help="do not run migrations first")
    load.set_defaults(func=_demo_load)


def _demo_load(args) -> int:
    from bot.crm.db import make_engine, upgrade
    from bot.crm.demo import DEMO_FILE, load_demo

    engine = make_engine(args.database_url)
    try:
        if not args.no_upgrade:
            upgrade(engine)
        summary = load_demo(engine, path=args.file or DEMO_FILE)
    finally:
        engine.dispose()
    print(
        f"demo data loaded relative to {summary.today}: {summary.guests} guests, "
        f"{summary.bookings} bookings, {summary.orders} orders ({summary.created} new rows)"
    )
    return EXIT_OK


# ---- guest ----------------------------------------------------------------------------------


def register_guest(subparsers) -> None:
    guest = subparsers.add_parser("guest", help="guest profiles (every access is audited)")
    sub = guest.add_subparsers(dest="guest_command", required=True)
    show = sub.add_parser("show", help="print a guest's CRM profile")
    show.add_argument("sender_id")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--actor", default=_default_actor(), help="who is looking (audit log)")
    show.add_argument("--reason", help="why (audit log)")
    show.set_defaults(func=_guest_show)
    lst = sub.add_parser("list", help="list guests")
    lst.add_argument("--demo", action="store_true", help="only demo guests")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.add_argument("--actor", default=_default_actor(), help="who is looking (audit log)")
    lst.set_defaults(func=_guest_list)
    from bot.guest_rights_cli import register_guest_rights

    register_guest_rights(sub, _default_actor())


def _guest_show(args) -> int:
    from bot.crm.store import GuestNotFound

    store = _store(args)
    try:
        profile = store.profile(args.sender_id, actor=args.actor, reason=args.reason)
    except GuestNotFound:
        return _fail(f"no guest with sender id {args.sender_id!r}", EXIT_NOT_FOUND)
    finally:
        store.close()
    if args.json:
        print(json.dumps(profile, ensure_ascii=False, indent=2))
    else:
        print(format_profile(profile))
    return EXIT_OK


def _guest_list(args) -> int:
    store = _store(args)
    try:
        guests = store.list_guests(demo=True if args.demo else None)
        store.record_audit(args.actor, "guest.list", "guest", None, {"count": len(guests)})
    finally:
        store.close()
    rows = [
        {
            "sender_id": g.sender_id,
            "display_name": g.display_name,
            "tier": g.tier,
            "is_demo": g.is_demo,
        }
        for g in guests
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif not rows:
        print("no guests")
    else:
        for row in rows:
            demo = "  [demo]" if row["is_demo"] else ""
            print(f"{row['sender_id']:<24} {row['display_name'] or '-':<10} {row['tier']}{demo}")
    return EXIT_OK


def _local(iso: str | None) -> str:
    """An ISO timestamp from the profile, shown in China time."""
    if not iso:
        return "-"
    from bot.crm.store import CHINA_TZ

    return dt.datetime.fromisoformat(iso).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")


def format_profile(p: dict) -> str:
    """The human-readable `guest show` page."""
    g = p["guest"]
    lines = [
        f"{g['display_name'] or '(no name)'}  {g['sender_id']}  {g['tier']}"
        f"{'  [demo]' if g['is_demo'] else ''}",
        f"  phone: {g['phone'] or '-'}   birthday: {g['birthday'] or '-'}",
    ]
    identities = [f"{k}={v}" for k, v in p["identities"].items() if v]
    lines.append(f"  identities: {', '.join(identities) or '-'}")
    if g.get("health_notes"):
        lines.append(f"  health notes: {g['health_notes']}")

    def section(title: str, items: list, render: Callable[[dict], str]) -> None:
        lines.append(f"{title}:" + ("" if items else " none"))
        lines.extend(f"  {render(item)}" for item in items)

    section(
        "Bookings",
        p["bookings"],
        lambda b: (
            f"#{b['id']} {b['check_in']} → {b['check_out']} ({b['nights']} nights) "
            f"{b['property_id']} {b['city'] or ''} {b['room_type'] or ''} {b['purpose'] or ''} "
            f"x{b['party_size']} [{b['status']}] {b['confirmation_no'] or ''}".rstrip()
        ),
    )
    section(
        "Orders",
        p["orders"],
        lambda o: (
            f"#{o['id']} {o['item']} {_local(o['scheduled_at'])} "
            f"x{o['party_size'] or '-'} [{o['status']}] booking #{o['booking_id'] or '-'}"
        ),
    )
    section(
        "Tags",
        p["tags"],
        lambda t: (
            f"{t['category']}: {t['value']} ({t['confidence']:.2f})"
            f"{'' if t['active'] else ' [inactive]'}"
        ),
    )
    section(
        "Tickets",
        p["tickets"],
        lambda t: (
            f"#{t['id']} {t['kind']} {t['category'] or ''} {t['severity']} [{t['status']}] "
            f"{_local(t['created_at'])}"
        ),
    )
    section(
        "Handoffs",
        p["handoffs"],
        lambda h: (
            f"#{h['id']} {h['reason']} [{h['status']}] {h['advisor_userid'] or ''} "
            f"{_local(h['created_at'])}"
        ),
    )
    section(
        "Pages",
        p["pages"],
        lambda pg: (
            f"#{pg['id']} {pg['subject_type']} #{pg['subject_id']} {pg['step']} → "
            f"{pg['recipient'] or '-'} due {_local(pg['due_at'])} [{pg['status']}]"
        ),
    )
    section(
        "Consents",
        p["consents"],
        lambda c: (
            f"{c['purpose']}: {'granted' if c['granted'] else 'withdrawn'} "
            f"({c['source'] or '-'}, {_local(c['created_at'])})"
        ),
    )
    return "\n".join(lines)


# ---- wiring ---------------------------------------------------------------------------------

COMMANDS: list[Callable] = [register_db, register_demo, register_guest]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="concierge", description="WeCom concierge tools")
    parser.add_argument("--database-url", help="override DATABASE_URL")
    subparsers = parser.add_subparsers(dest="command", required=True)
    registrars = list(COMMANDS)
    registrars += [importlib.import_module(name).register for name in COMMAND_MODULES]
    for register in registrars:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `concierge` script; returns the exit code."""
    from bot.crm.crypto import CRMKeyError
    from bot.crm.demo import DemoRefused
    from bot.crm.store import NotFound, StoreUnavailable

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StoreUnavailable as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    except CRMKeyError as exc:
        return _fail(str(exc), EXIT_UNAVAILABLE)
    except (NotFound, DemoRefused) as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)


if __name__ == "__main__":
    sys.exit(main())

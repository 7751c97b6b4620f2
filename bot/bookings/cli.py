"""`concierge bookings ...` and `concierge guest link|merge`: staff commands for bookings and
identities.

    concierge bookings import FILE [--dry-run] [--json]
        exit 0: every row used; 1: some rows rejected (listed); 2: the file cannot be read
        (or the database is unreachable): nothing was written
    concierge bookings facts [SENDER_ID] [--refresh] [--json]
    concierge guest link SENDER_ID (--to SENDER_ID | --phone PHONE | --booking CONF_NO)
        an advisor verified the guest: the WeCom sender now answers for that profile
    concierge guest merge KEEP_SENDER_ID OTHER_SENDER_ID [--reason TEXT]
        two profiles of one person: every record of the other moves to KEEP
"""

from __future__ import annotations

import json
import sys

from bot.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, _default_actor, _fail, subcommands_of


def register(subparsers) -> None:
    bookings = subparsers.add_parser("bookings", help="bookings from the PMS and OTAs")
    sub = bookings.add_subparsers(dest="bookings_command", required=True)
    imp = sub.add_parser("import", help="import a PMS/OTA export (CSV UTF-8/BOM/GBK or XLSX)")
    imp.add_argument("file")
    imp.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
    imp.add_argument("--json", action="store_true", help="print the counts as JSON")
    imp.add_argument("--actor", default=_default_actor(), help="who imports (audit log)")
    imp.set_defaults(func=_import)
    facts = sub.add_parser("facts", help="profile facts derived from bookings")
    facts.add_argument("sender_id", nargs="?", help="one guest (default: all, with --refresh)")
    facts.add_argument("--refresh", action="store_true", help="recompute before printing")
    facts.add_argument("--json", action="store_true")
    facts.set_defaults(func=_facts)

    guest = subcommands_of(subparsers, "guest")
    link = guest.add_parser("link", help="tie a WeCom sender to the profile an advisor verified")
    link.add_argument("sender_id", help="the WeCom sender id (kf:..., wecom:...)")
    target = link.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", dest="to_sender", help="the profile's sender id")
    target.add_argument("--phone", help="the phone on the guest's bookings")
    target.add_argument("--booking", help="a confirmation number of the guest's bookings")
    link.add_argument("--actor", default=_default_actor(), help="who verified (audit log)")
    link.set_defaults(func=_link)
    merge = guest.add_parser("merge", help="join two profiles of the same person")
    merge.add_argument("keep", help="sender id of the profile that stays")
    merge.add_argument("other", help="sender id of the profile merged into it")
    merge.add_argument("--reason", help="why (audit log)")
    merge.add_argument("--actor", default=_default_actor(), help="who merges (audit log)")
    merge.add_argument("--json", action="store_true")
    merge.set_defaults(func=_merge)


def _linker(args):
    from bot.bookings.identity import IdentityLinker

    return IdentityLinker(args.database_url)


def _link(args) -> int:
    from bot.crm.errors import GuestNotFound

    linker = _linker(args)
    try:
        profile = linker.link(
            args.sender_id,
            to_sender=args.to_sender,
            phone=args.phone,
            confirmation_no=args.booking,
            actor=args.actor,
        )
    except GuestNotFound as exc:
        return _fail(f"no profile for {exc}", EXIT_NOT_FOUND)
    except ValueError as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    finally:
        linker.engine.dispose()
    print(f"{args.sender_id} is now linked to profile {profile}")
    return EXIT_OK


def _merge(args) -> int:
    from bot.crm.errors import GuestNotFound

    linker = _linker(args)
    try:
        moved = linker.merge(args.keep, args.other, actor=args.actor, reason=args.reason)
    except GuestNotFound as exc:
        return _fail(f"no guest with sender id {exc}", EXIT_NOT_FOUND)
    except ValueError as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    finally:
        linker.engine.dispose()
    if args.json:
        print(
            json.dumps(
                {"kept": args.keep, "merged": args.other, "moved": moved}, ensure_ascii=False
            )
        )
    else:
        rows = ", ".join(f"{n} {t}" for t, n in sorted(moved.items())) or "no other records"
        print(f"merged {args.other} into {args.keep}: {rows}")
    return EXIT_OK


def _import(args) -> int:
    from bot.bookings.importer import BookingImporter, ImportFileError
    from bot.bookings.writer import BookingWriter
    from bot.crm.db import make_engine
    from bot.crm.store import CRMStore
    from bot.knowledge.kb import KnowledgeBase

    engine = make_engine(args.database_url)
    try:
        store = CRMStore(engine)
        store.ping()  # an unreachable or unmigrated database: exit 2 before reading anything
        importer = BookingImporter(
            BookingWriter(engine), KnowledgeBase.default(), on_changes=_replanner(store)
        )
        try:
            report = importer.import_file(args.file, dry_run=args.dry_run)
        except ImportFileError as exc:
            return _fail(str(exc), EXIT_UNAVAILABLE)
        if not args.dry_run:
            store.record_audit(
                args.actor,
                "bookings.import",
                "file",
                args.file,
                {**report.to_json(), "rejected": len(report.rejected)},
            )
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        dry = " (dry run: nothing written)" if args.dry_run else ""
        print(
            f"created {report.created}, updated {report.updated}, unchanged "
            f"{report.unchanged}, rejected {len(report.rejected)}{dry}"
        )
        for item in sorted(report.rejected, key=lambda r: r["row"]):
            print(f"  row {item['row']}: {item['reason']}", file=sys.stderr)
    return EXIT_NOT_FOUND if report.rejected else EXIT_OK


def _replanner(store):
    """What a moved or cancelled booking re-plans (bot.bookings.replan), built for this run."""
    from bot.bookings.replan import Replanner

    return Replanner(store).handle


def _facts(args) -> int:
    from bot.bookings.facts import FactsService

    service = FactsService(args.database_url)
    if args.sender_id is None:
        if not args.refresh:
            return _fail("name a guest, or use --refresh to recompute everyone's", EXIT_NOT_FOUND)
        count = service.refresh_all()
        print(f"facts recomputed for {count} guests", file=sys.stderr)
        return EXIT_OK
    facts = service.refresh(args.sender_id) if args.refresh else service.get(args.sender_id)
    if facts is None:
        return _fail(
            f"no facts for {args.sender_id!r} (unknown guest, or not computed yet: " "--refresh)",
            EXIT_NOT_FOUND,
        )
    out = facts.to_json()
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        for key, value in out.items():
            print(f"{key:<12} {value}")
    return EXIT_OK

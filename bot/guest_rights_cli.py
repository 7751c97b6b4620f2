"""`concierge guest export | erase | hold` (PIPL: access and copy, deletion, legal holds).

    concierge guest export SENDER_ID [--out FILE]          everything held, as JSON (audited)
    concierge guest erase SENDER_ID --reason TEXT [--skip-wecom-tags] [--json]
    concierge guest hold SENDER_ID --reason TEXT | --release

Exit codes as bot.cli: 1 no such guest / refused (legal hold), 2 a store is unavailable (the
erasure did nothing irreversible and can be run again).
"""

from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE = 0, 1, 2


def register_guest_rights(sub, default_actor: str) -> None:
    export = sub.add_parser("export", help="everything held about a guest, as JSON (PIPL Art. 45)")
    export.add_argument("sender_id")
    export.add_argument("--out", help="write to this file (0600) instead of stdout")
    export.add_argument("--actor", default=default_actor, help="who exports (audit log)")
    export.add_argument("--reason", help="why (audit log)")
    export.set_defaults(func=_export)
    erase = sub.add_parser("erase", help="erase a guest from every store (PIPL Art. 47)")
    erase.add_argument("sender_id")
    erase.add_argument("--reason", required=True, help="why (kept in the audit log)")
    erase.add_argument("--actor", default=default_actor, help="who erases (audit log)")
    erase.add_argument(
        "--skip-wecom-tags",
        action="store_true",
        help="erase even though WeCom cannot be reached to remove the corp tags "
        "(then remove them by hand in the admin console)",
    )
    erase.add_argument("--json", action="store_true", help="the report as JSON")
    erase.set_defaults(func=_erase)
    hold = sub.add_parser("hold", help="put a legal hold on a guest (no erasure) or lift it")
    hold.add_argument("sender_id")
    group = hold.add_mutually_exclusive_group(required=True)
    group.add_argument("--reason", help="why the data must be kept")
    group.add_argument("--release", action="store_true", help="lift the hold")
    hold.add_argument("--actor", default=default_actor, help="who (audit log)")
    hold.set_defaults(func=_hold)


def _fail(message: str, code: int) -> int:
    print(f"concierge: {message}", file=sys.stderr)
    return code


def _export(args) -> int:
    import os

    from bot.audit import Staff
    from bot.crm.store import CRMStore, GuestNotFound
    from bot.guest_export import export_guest
    from bot.tracker_events import TrackerEvents

    crm, tracker = CRMStore(args.database_url), TrackerEvents()
    try:
        data = export_guest(
            crm,
            args.sender_id,
            staff=Staff.from_actor(args.actor),
            tracker=tracker,
            reason=args.reason,
        )
    except GuestNotFound:
        return _fail(f"no guest with sender id {args.sender_id!r}", EXIT_REFUSED)
    finally:
        crm.close()
        tracker.close()
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if args.out:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        print(f"exported {args.sender_id} to {args.out}", file=sys.stderr)
    else:
        print(text)
    return EXIT_OK


def _erase(args) -> int:
    from bot.crm.store import CRMStore
    from bot.erasure import ErasureIncomplete, LegalHold, build_eraser

    crm = CRMStore(args.database_url)
    eraser = build_eraser(crm)
    try:
        report = eraser.erase(
            args.sender_id,
            actor=args.actor,
            reason=args.reason,
            skip_wecom_tags=args.skip_wecom_tags,
        )
    except LegalHold as exc:
        return _fail(str(exc), EXIT_REFUSED)
    except ErasureIncomplete as exc:
        return _fail(f"{exc} (or pass --skip-wecom-tags)", EXIT_UNAVAILABLE)
    finally:
        if eraser.tracker is not None:
            eraser.tracker.close()
        crm.close()
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    what = ", ".join(f"{k}: {v}" for k, v in sorted(report.counts.items()) if v) or "nothing held"
    print(f"erased {args.sender_id} ({what})", file=sys.stderr)
    return EXIT_OK


def _hold(args) -> int:
    from bot.crm.store import CRMStore

    crm = CRMStore(args.database_url)
    try:
        crm.set_legal_hold(args.sender_id, None if args.release else args.reason, actor=args.actor)
    finally:
        crm.close()
    state = "lifted" if args.release else "set"
    print(f"legal hold on {args.sender_id} {state}", file=sys.stderr)
    return EXIT_OK

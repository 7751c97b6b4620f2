"""`concierge keys rotate [--dry-run] [--json]` (bot.crm.keys): re-encrypt under the first key
of CRM_ENCRYPTION_KEY and recompute the lookup digests. Audited as `keys.rotate`."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    keys = subparsers.add_parser("keys", help="encryption keys of the CRM")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    rotate = sub.add_parser(
        "rotate",
        help="re-encrypt everything under the first key of "
        "CRM_ENCRYPTION_KEY (docs/SECURITY.md)",
    )
    rotate.add_argument("--dry-run", action="store_true", help="count, change nothing")
    rotate.add_argument("--json", action="store_true", help="the counts as JSON")
    rotate.add_argument("--actor", default=None, help="who (audit log; default cli:<login>)")
    rotate.set_defaults(func=_rotate)


def _rotate(args) -> int:
    from bot.cli import _default_actor
    from bot.crm.db import make_engine
    from bot.crm.keys import rotate
    from bot.crm.store import CRMStore

    engine = make_engine(args.database_url)
    try:
        counts = rotate(engine, dry_run=args.dry_run)
        if not args.dry_run:
            CRMStore(engine).record_audit(
                args.actor or _default_actor(), "keys.rotate", None, None, {"rewritten": counts}
            )
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(counts, indent=2))
    verb = "would rewrite" if args.dry_run else "rewrote"
    total = sum(counts.values())
    print(f"keys rotate: {verb} {total} value(s) in {len(counts)} column(s)", file=sys.stderr)
    return 0

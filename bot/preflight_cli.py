"""`concierge preflight [--json] [--strict]`: the start-up checks of bot.preflight, by hand.

Exit 0 when a process would start (under development/test: always, the problems are listed as
warnings); 2 when it would refuse, with every problem on stderr (or as JSON on stdout).
"""

from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_REFUSED = 0, 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "preflight", help="check secrets and stores as every process does at start"
    )
    parser.add_argument("--json", action="store_true", help="the problems as JSON on stdout")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="judge as production even under CONCIERGE_ENV=development/test",
    )
    parser.set_defaults(func=_preflight)


def _preflight(args) -> int:
    from bot.preflight import run_checks
    from bot.settings import get_settings

    settings = get_settings()
    if args.database_url:  # the CLI's --database-url is what this run would use
        settings = settings.__class__(**{**settings.__dict__, "database_url": args.database_url})
    problems = run_checks(settings)
    strict = args.strict or not settings.relaxed
    refused = strict and bool(problems)
    if args.json:
        print(
            json.dumps(
                {
                    "env": settings.concierge_env_raw,
                    "strict": strict,
                    "ok": not refused,
                    "problems": [{"name": p.name, "message": p.message} for p in problems],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    if not problems:
        print("preflight: ok", file=sys.stderr)
        return EXIT_OK
    if not args.json:
        head = (
            "preflight: refusing"
            if refused
            else f"preflight: CONCIERGE_ENV={settings.concierge_env}, tolerated here; "
            "production would refuse"
        )
        print(f"{head} ({len(problems)} problem(s)):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    return EXIT_REFUSED if refused else EXIT_OK

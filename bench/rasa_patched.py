"""`python -m bench.rasa_patched [--patch NAME]... -- <rasa arguments>`: run Rasa with only the
chosen speed-ups of `bot/rasa_speedups.py` applied, so `python -m bench --try NAME` measures what
each one is worth. (The product applies all of them through `python -m bot.rasa_main`; a stack
started through this wrapper without `--patch` is our bot without them.)

Patches:
- `jsonschema`: Rasa 3.6 validates every action server answer with a validator built anew, which
  first checks the constant schema against the JSON-Schema metaschema (~30 ms of CPU on the event
  loop per custom action); `bot.rasa_speedups.cache_action_response_validator` builds it once.
- `sqlite`: Rasa's SQLTrackerStore on a SQLite file opens a connection per query (SQLAlchemy 1.4's
  NullPool for file SQLite); `bot.rasa_speedups.pool_sqlite_tracker_store` pools them, in WAL mode
  with synchronous=NORMAL. (The CRM engine, `bot.crm.db.make_engine`, pools them by default.)
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List

from bot.rasa_speedups import cache_action_response_validator, pool_sqlite_tracker_store

PATCHES: Dict[str, Callable[[], None]] = {
    "jsonschema": cache_action_response_validator,
    "sqlite": pool_sqlite_tracker_store,
}


def main(argv: List[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        i = argv.index("--")
        ours, rasa_args = argv[:i], argv[i + 1 :]
    else:
        ours, rasa_args = [], argv
    p = argparse.ArgumentParser(prog="python -m bench.rasa_patched")
    p.add_argument("--patch", action="append", default=[], choices=sorted(PATCHES))
    args = p.parse_args(ours)
    for name in args.patch:
        PATCHES[name]()
        print(f"bench.rasa_patched: applied {name}", file=sys.stderr, flush=True)
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *rasa_args]
    rasa_main()


if __name__ == "__main__":
    main()

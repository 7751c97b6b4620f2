"""`python -m bench.rasa_patched [--patch NAME]... -- <rasa arguments>`: run Rasa with experimental
speed-ups applied in-process, so `python -m bench --try NAME` can measure a lever before anyone
changes the product. Nothing here is used by the bot itself; the levers that pay are proposed in
docs/PERFORMANCE.md for the owners of the Rasa entry point to adopt.

Patches:
- `jsonschema`: Rasa 3.6 checks every action server answer with `jsonschema.validate(result,
  schema)`, which first validates the (constant) schema against the JSON Schema metaschema: ~30 ms
  of CPU on the event loop per remote action call. Build the validator once instead; the answer is
  still validated, with the same errors.
- `sqlite`: SQLite connections kept open in a pool instead of opened and closed for every
  query (SQLAlchemy 1.4 gives file SQLite a NullPool: Rasa's SQLTrackerStore opens the file twice
  per message, the CRM store once per query, each open running its PRAGMAs and each close a WAL
  checkpoint), in WAL mode with synchronous=NORMAL: a commit no longer waits for an fsync
  (durable across a crash of the process, not of the machine's power). Applied to the tracker
  store (rasa.core.tracker_store.create_engine_kwargs) and to bot.crm.db.make_engine (CRM store,
  WeCom inbox/outbox), in whichever process runs under this wrapper.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List


def patch_jsonschema() -> None:
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL
    from jsonschema import ValidationError, exceptions

    schema = RemoteAction.action_response_format_spec()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)

    def _validate_action_result(self, result):  # same contract as Rasa's
        error = exceptions.best_match(validator.iter_errors(result))
        if error is not None:
            error.message += (
                ". Failed to validate Action server response from API, make sure your response "
                "from the Action endpoint is valid. For more information about the format visit "
                f"{DOCS_BASE_URL}/custom-actions")
            raise error
        return True

    assert issubclass(ValidationError, Exception)
    RemoteAction._validate_action_result = _validate_action_result


def patch_sqlite() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine, make_url
    from sqlalchemy.pool import QueuePool

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        if "sqlite" not in type(dbapi_connection).__module__:
            return
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    def is_sqlite(url) -> bool:
        try:
            return make_url(str(url)).get_backend_name() == "sqlite"
        except Exception:
            return False

    import rasa.core.tracker_store as ts

    stock_kwargs = ts.create_engine_kwargs

    def create_engine_kwargs(url):
        if is_sqlite(url) and ":memory:" not in str(url):
            # one event loop thread uses it; connections may not cross threads otherwise
            return {"poolclass": QueuePool, "pool_size": 2, "max_overflow": 2,
                    "connect_args": {"check_same_thread": False}}
        return stock_kwargs(url)

    ts.create_engine_kwargs = create_engine_kwargs

    import bot.crm.db as crm_db

    stock_make_engine = crm_db.make_engine

    def make_engine(url=None, **kwargs):
        from bot.settings import get_settings

        if is_sqlite(url or get_settings().database_url) and "poolclass" not in kwargs:
            kwargs.update(poolclass=QueuePool, pool_size=5, max_overflow=10)
        return stock_make_engine(url, **kwargs)

    crm_db.make_engine = make_engine


PATCHES: Dict[str, Callable[[], None]] = {"jsonschema": patch_jsonschema, "sqlite": patch_sqlite}


def main(argv: List[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        i = argv.index("--")
        ours, rasa_args = argv[:i], argv[i + 1:]
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

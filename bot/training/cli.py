"""`concierge nlu ...` and `concierge model ...`: the admins' training loop on the command line.

    concierge nlu collect [--follow]                 conversation events → inbox (the worker)
    concierge nlu inbox [--json] [--status open|labelled|discarded|all]
    concierge nlu show ITEM [--json]                 one item with the conversation around it
    concierge nlu label ITEM INTENT [--entity TYPE=TEXT[=VALUE] ...]   (out_of_scope: out of scope)
    concierge nlu discard ITEM [--reason TEXT]
    concierge model train [--wait] [--json]          background training + held-out evaluation
    concierge model list [--json]                    version, created, figures, deployed
    concierge model deploy VERSION [--override REASON]
    concierge model rollback
    concierge model status [--json]                  what each Rasa replica runs
    concierge data check [--json]                    validate the files admins edit

Every action is audited with `--actor` (default cli:<login name>). JSON goes to stdout, messages
to stderr. Exit codes as bot.cli: 0 ok, 1 refused / not found, 2 unusable configuration.
"""

from __future__ import annotations

import json
import sys
from typing import Any

EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE = 0, 1, 2


def _actor_default() -> str:
    from bot.cli import _default_actor

    return _default_actor()


def _loop(args):
    from bot.settings import get_settings
    from bot.training.service import build_training_loop

    return build_training_loop(get_settings(), args.database_url)


def _out(args, payload: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
    else:
        print(text)


def _err(message: str, code: int = EXIT_REFUSED) -> int:
    print(f"concierge: {message}", file=sys.stderr)
    return code


def register(subparsers) -> None:
    actor = {"default": None, "help": "who does this (audit log; default cli:<login name>)"}
    nlu = subparsers.add_parser("nlu", help="the NLU inbox: misunderstood messages to label")
    sub = nlu.add_subparsers(dest="nlu_command", required=True)
    p = sub.add_parser("collect", help="file new misunderstood messages from the tracker store")
    p.add_argument("--follow", action="store_true", help="keep collecting (the worker)")
    p.add_argument("--interval", type=float, help="seconds between rounds (NLU_INBOX_INTERVAL_S)")
    p.set_defaults(func=_collect)
    p = sub.add_parser("inbox", help="list inbox items (collects new ones first)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--status", default="open", choices=("open", "labelled", "discarded", "all"))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--no-collect", action="store_true", help="only what is already collected")
    p.set_defaults(func=_inbox)
    p = sub.add_parser("show", help="one item with the conversation around it")
    p.add_argument("item", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_show)
    p = sub.add_parser("label", help="label an item: it becomes a training example")
    p.add_argument("item", type=int)
    p.add_argument("intent", help="an intent of domain.yml (out_of_scope: out of scope)")
    p.add_argument(
        "--entity",
        action="append",
        default=[],
        metavar="TYPE=TEXT[=VALUE]",
        help="mark an entity, e.g. amenity=泳池=pool (repeatable)",
    )
    p.add_argument("--actor", **actor)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_label)
    p = sub.add_parser("discard", help="drop an item (not useful for training)")
    p.add_argument("item", type=int)
    p.add_argument("--reason")
    p.add_argument("--actor", **actor)
    p.set_defaults(func=_discard)

    model = subparsers.add_parser("model", help="model versions: train, list, deploy, roll back")
    sub = model.add_subparsers(dest="model_command", required=True)
    p = sub.add_parser("train", help="train a new version in the background, then evaluate it")
    p.add_argument("--wait", action="store_true", help="train in the foreground")
    p.add_argument("--note")
    p.add_argument("--actor", **actor)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_train)
    p = sub.add_parser("list", help="versions with their held-out figures")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)
    p = sub.add_parser("deploy", help="switch every Rasa replica to VERSION (regression gate)")
    p.add_argument("version")
    p.add_argument("--override", metavar="REASON", help="deploy despite the gate (audited)")
    p.add_argument("--actor", **actor)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_deploy)
    p = sub.add_parser("rollback", help="switch back to the previously deployed version")
    p.add_argument("--actor", **actor)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_rollback)
    p = sub.add_parser("status", help="the fingerprint each Rasa replica runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)
    register_data(subparsers)


# ---- nlu ------------------------------------------------------------------------------------


def _collect(args) -> int:
    loop = _loop(args)
    try:
        if args.follow:
            import logging

            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
            loop.collector.follow(args.interval or loop.settings.training.collect_interval_s)
            return EXIT_OK
        n = loop.collect()
    finally:
        loop.close()
    print(f"read {n} new tracker events", file=sys.stderr)
    return EXIT_OK


def _reasons(reasons: dict) -> str:
    return ", ".join(f"{k}×{v}" if v > 1 else k for k, v in sorted(reasons.items()))


def _inbox(args) -> int:
    loop = _loop(args)
    try:
        if not args.no_collect:
            try:
                loop.collect()
            except Exception as exc:  # the tracker store may be away: show what we have
                print(
                    f"concierge: could not collect new messages: {str(exc).splitlines()[0]}",
                    file=sys.stderr,
                )
        items = loop.inbox.items(None if args.status == "all" else args.status, args.limit)
    finally:
        loop.close()
    lines = [
        f"#{i['id']:<5} ×{i['count']:<3} {i['text']}\n"
        f"       predicted {i['predicted']} ({i['confidence']}), alternatives "
        f"{', '.join(f'{n} {c:.2f}' for n, c in (i['alternatives'] or [])[:3]) or '-'}; "
        f"why: {_reasons(i['reasons'])}"
        + (
            f"; label: {i['label']['intent']}"
            if i.get("label") and i["label"].get("intent")
            else ""
        )
        for i in items
    ]
    _out(args, items, "\n".join(lines) if lines else f"no {args.status} items")
    return EXIT_OK


def _show(args) -> int:
    from bot.training.inbox import ItemNotFound

    loop = _loop(args)
    try:
        item = loop.inbox.item(args.item)
    except ItemNotFound as exc:
        return _err(str(exc))
    finally:
        loop.close()
    convo = "\n".join(
        f"  {'>>' if c.get('this') else '  '} {c['who']}: {c['text']}"
        for c in item.get("context") or []
    )
    _out(
        args,
        item,
        f"#{item['id']} [{item['status']}] ×{item['count']} {item['text']}\n"
        f"  predicted {item['predicted']} ({item['confidence']}); alternatives "
        f"{item['alternatives']}; why: {_reasons(item['reasons'])}\n{convo}",
    )
    return EXIT_OK


def _parse_entity(spec: str):
    from bot.nlu.labels import Entity

    parts = spec.split("=")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"--entity {spec!r}: expected TYPE=TEXT or TYPE=TEXT=VALUE")
    return Entity(entity=parts[0], text=parts[1], value=parts[2] if len(parts) == 3 else None)


def _label(args) -> int:
    from bot.nlu.labels import LabelRefused
    from bot.training.inbox import ItemClosed, ItemNotFound

    try:
        entities = [_parse_entity(s) for s in args.entity]
    except ValueError as exc:
        return _err(str(exc))
    loop = _loop(args)
    try:
        item = loop.inbox.label(
            args.item, args.intent, actor=args.actor or _actor_default(), entities=entities
        )
    except (ItemNotFound, ItemClosed) as exc:
        return _err(str(exc))
    except LabelRefused as exc:
        return _err(f"refused: {exc}")
    finally:
        loop.close()
    label = item["label"]
    how = "written to" if label["written"] else "already in"
    _out(
        args,
        item,
        f"#{item['id']} labelled {args.intent}: {how} {label['file']}: " f"- {label['line']}",
    )
    return EXIT_OK


def _discard(args) -> int:
    from bot.training.inbox import ItemClosed, ItemNotFound

    loop = _loop(args)
    try:
        loop.inbox.discard(args.item, actor=args.actor or _actor_default(), reason=args.reason)
    except (ItemNotFound, ItemClosed) as exc:
        return _err(str(exc))
    finally:
        loop.close()
    print(f"#{args.item} discarded")
    return EXIT_OK


# ---- model ----------------------------------------------------------------------------------


def _figures(row: dict) -> str:
    fig = (row.get("figures") or {}).get("simplified")
    if not fig:
        return "-"

    def pct(key):
        v = fig.get(key)
        return "-" if v is None else f"{v:.3f}"

    return (
        f"macro-F1 {pct('macro_f1')} complain-R {pct('complain_recall')} "
        f"OOS-R {pct('oos_recall')} false-fallback {pct('false_fallback_rate')}"
    )


def _train(args) -> int:
    loop = _loop(args)
    try:
        row = loop.train(actor=args.actor or _actor_default(), wait=args.wait, note=args.note)
    finally:
        loop.close()
    if args.wait:
        text = (
            f"{row['version']} {row['status']}: {_figures(row)}; trained in "
            f"{row['train_seconds']} s, evaluated in {row['eval_seconds']} s"
            if row["status"] == "ready"
            else f"{row['version']} {row['status']}: {row['error']}"
        )
    else:
        text = (
            f"{row['version']} queued: training in the background "
            f"(`concierge model list` shows when it is ready)"
        )
    _out(args, row, text)
    return EXIT_OK if row["status"] in ("ready", "queued", "training") else EXIT_REFUSED


def _list(args) -> int:
    loop = _loop(args)
    try:
        rows = loop.registry.versions()
    finally:
        loop.close()
    text = (
        "\n".join(
            f"{'*' if r['deployed'] else ' '} {r['version']:<26} {r['status']:<10} "
            f"{r['created'][:16]} {r['created_by']:<16} {_figures(r)}"
            for r in rows
        )
        or "no versions"
    )
    _out(args, rows, text)
    return EXIT_OK


def _deploy(args) -> int:
    from bot.training.deploy import DeployError, GateRefused
    from bot.training.registry import RegistryError, VersionNotFound

    loop = _loop(args)
    try:
        result = loop.deployer.deploy(
            args.version, actor=args.actor or _actor_default(), override=args.override
        )
    except GateRefused as exc:
        return _err(
            "refused by the regression gate:\n  "
            + "\n  ".join(exc.reasons)
            + "\ndeploy it anyway only with --override REASON (audited)"
        )
    except (VersionNotFound, DeployError, RegistryError) as exc:
        return _err(str(exc))
    finally:
        loop.close()
    note = " (gate overridden)" if result["overridden"] else ""
    _out(
        args,
        result,
        f"deployed {result['version']}{note} to {', '.join(result['replicas'])}; "
        f"fingerprint {result['fingerprint']}; previous {result['previous']} "
        "(`concierge model rollback` goes back)",
    )
    return EXIT_OK


def _rollback(args) -> int:
    from bot.training.deploy import DeployError
    from bot.training.registry import VersionNotFound

    loop = _loop(args)
    try:
        result = loop.deployer.rollback(actor=args.actor or _actor_default())
    except (VersionNotFound, DeployError) as exc:
        return _err(str(exc))
    finally:
        loop.close()
    _out(
        args,
        result,
        f"rolled back to {result['version']} (from {result['previous']}); "
        f"fingerprint {result['fingerprint']}",
    )
    return EXIT_OK


def _status(args) -> int:
    loop = _loop(args)
    try:
        payload = {
            "deployed": loop.registry.deployed_version(),
            "replicas": loop.deployer.fingerprints(),
        }
        if payload["deployed"]:
            payload["fingerprint"] = loop.registry.get(payload["deployed"])["fingerprint"]
    finally:
        loop.close()
    _out(
        args,
        payload,
        f"deployed: {payload['deployed'] or '(nothing deployed yet)'} "
        f"{payload.get('fingerprint') or ''}\n"
        + "\n".join(f"  {u}: {f}" for u, f in payload["replicas"].items()),
    )
    return EXIT_OK


# ---- data -----------------------------------------------------------------------------------


def register_data(subparsers) -> None:
    data = subparsers.add_parser("data", help="the data files admins edit")
    sub = data.add_subparsers(dest="data_command", required=True)
    p = sub.add_parser(
        "check",
        help="validate every data file (knowledge base, catalogue, SLA "
        "and marketing policies, rules, staff, demo, NLU, ...)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_data_check)


def _data_check(args) -> int:
    from bot.datafiles import check_all
    from bot.settings import get_settings

    checks = check_all(get_settings())
    _out(args, [c.__dict__ for c in checks], "\n".join(c.line for c in checks))
    return EXIT_OK if all(c.ok for c in checks) else EXIT_REFUSED

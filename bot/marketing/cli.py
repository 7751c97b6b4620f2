"""`concierge segment | campaign | touchpoints | marketing` (registered through
bot.cli.COMMAND_MODULES). JSON goes to stdout, messages to stderr.

    concierge segment count FILE-or-NAME [--json] [--list N] [--outside]
    concierge campaign create FILE.yml [--json] [--actor WHO]     prints the new id
    concierge campaign list [--json]
    concierge campaign preview ID [--json] [--samples N]
    concierge campaign send ID [--json]          now (the worker sends scheduled ones when due)
    concierge campaign report ID [--json] [--no-refresh]
    concierge campaign cancel ID [--json]
    concierge campaign remind ID [--json]
    concierge touchpoints run [--now ISO-TIME] [--dry-run]         (JSON report)
    concierge touchpoints set PROPERTY KIND on|off
    concierge touchpoints show PROPERTY [--json]
    concierge marketing worker [--poll 30] [--touchpoints-every 300] [--once]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import json
import logging
import sys

from bot.core.time import CHINA_TZ

EXIT_OK, EXIT_NOT_FOUND, EXIT_UNAVAILABLE = 0, 1, 2


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


def _out(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _fail(message: str, code: int = EXIT_NOT_FOUND) -> int:
    print(f"concierge: {message}", file=sys.stderr)
    return code


def register(subparsers) -> None:
    seg = subparsers.add_parser("segment", help="marketing segments")
    sub = seg.add_subparsers(dest="segment_command", required=True)
    count = sub.add_parser("count", help="how many guests a segment holds")
    count.add_argument("segment", help="a segment YAML file or a name in data/marketing/segments")
    count.add_argument("--json", action="store_true")
    count.add_argument("--list", type=int, default=0, metavar="N", help="also list N members")
    count.add_argument(
        "--outside",
        action="store_true",
        help="with --list: also guests outside it and the rules they fail",
    )
    count.add_argument("--actor", default=_actor(), help="who is looking (audit log, with --list)")
    count.set_defaults(func=_segment_count)

    camp = subparsers.add_parser("campaign", help="member-day and one-off broadcasts")
    sub = camp.add_subparsers(dest="campaign_command", required=True)
    create = sub.add_parser("create", help="create a campaign from a YAML file")
    create.add_argument("file")
    create.add_argument("--json", action="store_true")
    create.add_argument("--actor", default=_actor())
    create.set_defaults(func=_campaign_create)
    lst = sub.add_parser("list", help="every campaign")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_campaign_list)
    for name, helptext in (
        ("preview", "dry run: recipients, left out and why, sample texts"),
        ("send", "send now"),
        ("report", "delivery report and attribution"),
        ("cancel", "cancel a scheduled campaign or unconfirmed tasks"),
        ("remind", "remind advisors who have not confirmed (3 a day)"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("id", type=int)
        p.add_argument("--json", action="store_true")
        if name == "preview":
            p.add_argument("--samples", type=int, default=3)
            p.add_argument("--actor", default=_actor(), help="who is looking (audit log)")
        if name == "report":
            p.add_argument("--no-refresh", action="store_true", help="do not ask WeCom")
        if name == "cancel":
            p.add_argument("--actor", default=_actor())
        p.set_defaults(func=_campaign_action, action=name)

    tp = subparsers.add_parser("touchpoints", help="automatic lifecycle touchpoints")
    sub = tp.add_subparsers(dest="touchpoints_command", required=True)
    run = sub.add_parser("run", help="fire every touchpoint due (JSON report on stdout)")
    run.add_argument("--now", help="ISO time to run as (default: now); naive = China time")
    run.add_argument("--dry-run", action="store_true", help="say what would be sent, send nothing")
    run.set_defaults(func=_touchpoints_run)
    st = sub.add_parser("set", help="turn a touchpoint on or off for one property")
    st.add_argument("property_id")
    st.add_argument("kind")
    st.add_argument("state", choices=("on", "off"))
    st.add_argument("--actor", default=_actor())
    st.set_defaults(func=_touchpoints_set)
    show = sub.add_parser("show", help="a property's effective touchpoint sequence")
    show.add_argument("property_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_touchpoints_show)

    mk = subparsers.add_parser("marketing", help="the marketing worker")
    sub = mk.add_subparsers(dest="marketing_command", required=True)
    worker = sub.add_parser("worker", help="send due campaigns and touchpoints, every --poll s")
    worker.add_argument("--poll", type=float, default=30.0, help="seconds between campaign looks")
    worker.add_argument(
        "--touchpoints-every",
        type=float,
        default=300.0,
        help="seconds between touchpoint runs (default 300)",
    )
    worker.add_argument("--once", action="store_true")
    worker.add_argument("--worker-id")
    worker.set_defaults(func=_worker)


def _build(args, *, wecom: bool = True, clock=None):
    from bot.marketing.runtime import build_marketing

    return build_marketing(args.database_url, wecom=wecom, clock=clock)


def _audited(args, m, action: str, subject_type: str, subject_id, read):
    """Listings that name guests are staff reads: the audit row first, then the read."""
    from bot.audit import Staff, staff_read
    from bot.crm.store import CRMStore

    return staff_read(
        CRMStore(m.engine), Staff.from_actor(args.actor), action, subject_type, subject_id, read
    )


def _guarded(fn):
    """Turn the marketer's mistakes into a clear message and exit code 1; a database that is
    not there (or not migrated) into StoreUnavailable, which `concierge` reports with exit 2."""
    from bot.crm.errors import guarded

    fn_db = guarded(fn)

    def wrapper(args) -> int:
        from bot.marketing.campaigns import CampaignError, CampaignNotFound
        from bot.marketing.policy import PolicyError
        from bot.marketing.segments import SegmentError
        from bot.marketing.touchpoints import TouchpointConfigError
        from bot.wecom.errors import WeComError

        try:
            return fn_db(args)
        except (CampaignError, CampaignNotFound, SegmentError) as exc:
            return _fail(str(exc), EXIT_NOT_FOUND)
        except (PolicyError, TouchpointConfigError) as exc:
            return _fail(str(exc), EXIT_UNAVAILABLE)
        except WeComError as exc:
            return _fail(f"WeCom: {exc}", EXIT_UNAVAILABLE)

    return wrapper


@_guarded
def _segment_count(args) -> int:
    m = _build(args, wecom=False)
    if args.list:  # names guests: a staff read, audited first
        data = _audited(
            args,
            m,
            "segment.list",
            "segment",
            str(args.segment),
            lambda: m.segments.list(args.segment, limit=args.list, include_outside=args.outside),
        )
        data["count"] = m.segments.count(args.segment)["count"]
    else:
        data = m.segments.count(args.segment)
    if args.json:
        _out(data)
    else:
        print(f"{data['count']} guests")
        for row in data.get("members", []):
            print(
                f"  {row['sender_id']:<24} {row['name'] or '-':<8} {row['tier']} "
                f"{row['lifecycle']} value={row['value']} health={row['health']}"
            )
    return EXIT_OK


@_guarded
def _campaign_create(args) -> int:
    from bot.marketing.campaigns import CampaignError
    from bot.core.data import read_yaml

    spec = read_yaml(args.file, CampaignError)
    m = _build(args, wecom=False)
    campaign_id = m.campaigns.create(spec, actor=args.actor)
    if args.json:
        _out({"id": campaign_id})
    else:
        print(campaign_id)
    return EXIT_OK


@_guarded
def _campaign_list(args) -> int:
    rows = _build(args, wecom=False).campaigns.list()
    if args.json:
        _out(rows)
    else:
        for r in rows:
            print(f"#{r['id']} {r['name']} [{r['status']}] {r['surface']} {r['scheduled_at']}")
    return EXIT_OK


@_guarded
def _campaign_action(args) -> int:
    action = args.action
    if action == "preview":
        m = _build(args, wecom=False)
        data = _audited(
            args,
            m,
            "campaign.preview",
            "campaign",
            args.id,
            lambda: m.campaigns.preview(args.id, samples=args.samples),
        )
    else:

        async def go():
            m = _build(args)
            try:
                if action == "send":
                    return await m.campaigns.send(args.id, force_now=True)
                if action == "report":
                    return await m.campaigns.report(args.id, refresh=not args.no_refresh)
                if action == "cancel":
                    return await m.campaigns.cancel(args.id, actor=args.actor)
                return await m.campaigns.remind(args.id)
            finally:
                await m.close()

        data = asyncio.run(go())
    if args.json or action in ("preview", "report"):
        _out(data)
    else:
        print(json.dumps(data, ensure_ascii=False, default=str))
    if action == "send" and not data.get("sent"):
        print(f"concierge: campaign #{args.id} not sent: {data.get('why')}", file=sys.stderr)
    return EXIT_OK


def parse_now(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=CHINA_TZ)
    return value.astimezone(dt.timezone.utc)


@_guarded
def _touchpoints_run(args) -> int:
    try:
        now = parse_now(args.now)
    except ValueError:
        return _fail(f"--now {args.now!r}: an ISO time like 2026-12-05T10:00:00+08:00")

    async def go():
        m = _build(args, wecom=not args.dry_run)
        try:
            return await m.touchpoints.run(now=now, dry_run=args.dry_run)
        finally:
            await m.close()

    _out(asyncio.run(go()))
    return EXIT_OK


@_guarded
def _touchpoints_set(args) -> int:
    m = _build(args, wecom=False)
    m.touchpoints.set_enabled(args.property_id, args.kind, args.state == "on", actor=args.actor)
    print(f"{args.kind} {args.state} for {args.property_id}", file=sys.stderr)
    return EXIT_OK


@_guarded
def _touchpoints_show(args) -> int:
    steps = _build(args, wecom=False).touchpoints.sequence(args.property_id)
    if args.json:
        _out(steps)
    else:
        for s in steps:
            print(
                f"{s['kind']:<12} {'on ' if s['enabled'] else 'off'} "
                f"{'marketing' if s['marketing'] else 'service'}"
            )
    return EXIT_OK


@_guarded
def _worker(args) -> int:
    from bot.marketing.runtime import run_worker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from bot.preflight import start_process

    start_process("marketing")  # production: refuses default secrets and embedded stores

    async def go():
        m = _build(args)
        try:
            await run_worker(
                m,
                poll_s=args.poll,
                once=args.once,
                worker_id=args.worker_id,
                touchpoints_every_s=args.touchpoints_every,
            )
        finally:
            await m.close()

    asyncio.run(go())
    return EXIT_OK

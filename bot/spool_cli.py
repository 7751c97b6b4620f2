"""`concierge spool count | replay`: the guest writes queued while the CRM was down (bot.spool).

A command of its own (not `python -m bot.spool`) so that the spool, the flows that fill it and the
services that build them import one way only: this module -> bot.services -> bot.flows ->
bot.spool.
"""

from __future__ import annotations

EXIT_OK = 0


def register(subparsers) -> None:
    spool = subparsers.add_parser("spool", help="guest writes queued while the CRM was down")
    sub = spool.add_subparsers(dest="spool_command", required=True)
    sub.add_parser("count", help="how many writes wait").set_defaults(func=_count)
    sub.add_parser(
        "replay", help="apply the queued writes now (the next flow action " "would)"
    ).set_defaults(func=_replay)


def _flows():
    from bot.services import get_services

    return get_services().flows


def _count(args) -> int:
    print(len(_flows().spool))
    return EXIT_OK


def _replay(args) -> int:
    from bot.spool import replay

    flows = _flows()
    applied = replay(flows.spool, flows.replay_handlers())
    print(f"applied {applied}, still queued {len(flows.spool)}")
    return EXIT_OK

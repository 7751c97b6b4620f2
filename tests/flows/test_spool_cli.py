"""`concierge spool count | replay` over the flows' spool (queued while the CRM was down)."""

from __future__ import annotations

import json

from bot.cli import main


def test_count_and_replay(services, spool_file, capsys):
    services.flows.queue("no.such.op", "wecom:spool-cli", note="x")
    assert main(["spool", "count"]) == 0
    assert capsys.readouterr().out.strip() == "1"
    # an entry no handler knows is parked in the dead-letter file, not applied or kept
    assert main(["spool", "replay"]) == 0
    assert capsys.readouterr().out.strip() == "applied 0, still queued 0"
    dead = spool_file.with_name(spool_file.stem + ".dead.jsonl")
    [parked] = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert (parked["op"], parked["sender_id"]) == ("no.such.op", "wecom:spool-cli")

"""`python -m bot.ops.replicas N [Procfile.production]`: the production Procfile with N of each
process on the message path (`make run-prod REPLICAS=N` writes it to var/ and runs it): N Rasa
servers, N action servers, N intake servers; one worker, one event consumer.

Ports: the first of each keeps its usual one (Rasa 5005, actions 5055, intake 5006); replica i>0
listens on 5100+i (Rasa), 5200+i (actions), 5300+i (intake), clear of the other processes.
Rasa i calls action server i (ACTION_ENDPOINT_URL on its line; endpoints.production.yml reads
it). Every intake stores callbacks in the shared inbox and tells the Rasa replicas in turn
(WECOM_INTAKE_NOTIFY_URL, a list; a replica that is down is skipped); any replica may work a
guest off -- the inbox lease keeps one guest's messages in order and once
(tests/ops/test_replicas.py, tests/ops/test_rasa_replicas_ordering.py) and each replica's 10 s
sweep picks up what a dead one left. WeCom's callback URLs need one address: with more than one
intake, the TLS proxy spreads them (an nginx `upstream` of the intake ports,
docs/OPERATIONS.md). The case pages (/webhooks/paging/cases/) stay on the first Rasa replica, or
an upstream of all of them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List

FIRST_PORT, EXTRA_BASE = 5005, 5100
ACTIONS_PORT, ACTIONS_BASE = 5055, 5200
INTAKE_PORT, INTAKE_BASE = 5006, 5300
INBOX_PATH = "/webhooks/wecom/inbox"


def replica_ports(replicas: int, first: int = FIRST_PORT, base: int = EXTRA_BASE) -> List[int]:
    if not 1 <= replicas <= 16:
        raise ValueError("REPLICAS must be between 1 and 16")
    return [first] + [base + i for i in range(1, replicas)]


def replicate(procfile: str, replicas: int) -> str:
    """The Procfile's text with its `rasa:` line once per replica, and the intake (and the
    console's model deploys, RASA_URLS) told every replica's address."""
    ports = replica_ports(replicas)
    action_ports = replica_ports(replicas, ACTIONS_PORT, ACTIONS_BASE)
    intake_ports = replica_ports(replicas, INTAKE_PORT, INTAKE_BASE)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    out: List[str] = []

    def numbered(name: str, command: str, port_list: List[int], prefix=lambda i: "") -> None:
        usual = f"--port {port_list[0]}"
        if usual not in command:
            raise ValueError(f"the {name} line must say {usual}")
        for i, port in enumerate(port_list):
            label = f"{name}{i + 1}" if replicas > 1 or name == "rasa" else name
            out.append(f"{label}: {prefix(i)}{command.strip().replace(usual, f'--port {port}')}")

    for line in procfile.splitlines():
        name, _, command = line.partition(":")
        name = name.strip()
        if line.startswith("#") or not command:
            out.append(line)
        elif name == "rasa":
            numbered(
                "rasa",
                command,
                ports,
                lambda i: (
                    f"ACTION_ENDPOINT_URL=http://127.0.0.1:{action_ports[i]}/webhook "
                    if replicas > 1
                    else ""
                ),
            )
        elif name == "actions":
            numbered("actions", command, action_ports)
        elif name == "intake":
            notify = ",".join(u + INBOX_PATH for u in urls)
            numbered(
                "intake", command, intake_ports, lambda i: f"WECOM_INTAKE_NOTIFY_URL={notify} "
            )
        elif name == "console":
            out.append(f"console: RASA_URLS={','.join(urls)}{command}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or not re.fullmatch(r"\d+", argv[0]):
        print("usage: python -m bot.ops.replicas N [PROCFILE]", file=sys.stderr)
        return 2
    source = Path(argv[1] if len(argv) > 1 else "Procfile.production")
    try:
        sys.stdout.write(replicate(source.read_text(encoding="utf-8"), int(argv[0])))
    except (OSError, ValueError) as exc:
        print(f"replicas: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

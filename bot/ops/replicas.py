"""`python -m bot.ops.replicas N [Procfile.production]`: the production Procfile with N Rasa
servers (`make run-prod REPLICAS=N` writes it to var/ and runs it).

The first replica listens on 127.0.0.1:5005 (as with one), replica i>0 on 5100+i (clear of the
other processes' ports). They share the PostgreSQL tracker store and
the Redis lock store of endpoints.production.yml. The one address in front of them is the intake
server (:5006, WeCom's callback URLs): it stores every callback in the shared inbox and tells
the replicas in turn (WECOM_INTAKE_NOTIFY_URL, a list; a replica that is down is skipped), and
any replica may work a guest off -- the inbox lease keeps one guest's messages in order and
once (tests/ops/test_replicas.py); each replica's 10 s sweep picks up what a dead one left. No
extra reverse proxy is needed for WeCom's traffic; the case pages (/webhooks/paging/cases/) stay
on the first replica, or an nginx upstream of all of them (docs/OPERATIONS.md).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List

FIRST_PORT, EXTRA_BASE = 5005, 5100
INBOX_PATH = "/webhooks/wecom/inbox"


def replica_ports(replicas: int) -> List[int]:
    if not 1 <= replicas <= 16:
        raise ValueError("REPLICAS must be between 1 and 16")
    return [FIRST_PORT] + [EXTRA_BASE + i for i in range(1, replicas)]


def replicate(procfile: str, replicas: int) -> str:
    """The Procfile's text with its `rasa:` line once per replica, and the intake (and the
    console's model deploys, RASA_URLS) told every replica's address."""
    ports = replica_ports(replicas)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    out: List[str] = []
    for line in procfile.splitlines():
        name, _, command = line.partition(":")
        name = name.strip()
        if line.startswith("#") or not command:
            out.append(line)
        elif name == "rasa":
            if "--port 5005" not in command:
                raise ValueError("the rasa line must say --port 5005")
            for i, port in enumerate(ports):
                out.append(f"rasa{i + 1}:{command.replace('--port 5005', f'--port {port}')}")
        elif name == "intake":
            notify = ",".join(u + INBOX_PATH for u in urls)
            out.append(f"intake: WECOM_INTAKE_NOTIFY_URL={notify}{command}")
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

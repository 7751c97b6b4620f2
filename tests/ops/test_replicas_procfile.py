"""`make run-prod REPLICAS=N`: the Procfile it runs, and the intake telling the replicas in turn
(skipping one that is down, so no sender waits for a dead replica)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.ops.replicas import main, replica_ports, replicate
from bot.wecom.intake_server import RasaNotifier
from tests.wecom.helpers import free_port

PROCFILE = Path(__file__).resolve().parents[2] / "Procfile.production"


def test_n_of_each_process_on_free_ports_each_rasa_its_action_server_every_intake_all_rasas():
    text = replicate(PROCFILE.read_text(encoding="utf-8"), 3)
    lines = {
        ln.split(":", 1)[0]: ln.split(":", 1)[1]
        for ln in text.splitlines()
        if ln and not ln.startswith("#")
    }
    assert [n for n in lines if n.startswith("rasa")] == ["rasa1", "rasa2", "rasa3"]
    assert [n for n in lines if n.startswith("actions")] == ["actions1", "actions2", "actions3"]
    assert [n for n in lines if n.startswith("intake")] == ["intake1", "intake2", "intake3"]
    assert "--port 5005" in lines["rasa1"] and "--port 5101" in lines["rasa2"]
    assert "--port 5055" in lines["actions1"] and "--port 5202" in lines["actions3"]
    assert "--port 5006" in lines["intake1"] and "--port 5302" in lines["intake3"]
    assert "ACTION_ENDPOINT_URL=http://127.0.0.1:5201/webhook " in lines["rasa2"]
    assert all("endpoints.production.yml" in lines[f"rasa{i}"] for i in (1, 2, 3))
    notify = (
        "WECOM_INTAKE_NOTIFY_URL=http://127.0.0.1:5005/webhooks/wecom/inbox,"
        "http://127.0.0.1:5101/webhooks/wecom/inbox,http://127.0.0.1:5102/webhooks/wecom/inbox "
    )
    assert all(notify in lines[f"intake{i}"] for i in (1, 2, 3))
    every = [
        p
        for first, base in ((5005, 5100), (5055, 5200), (5006, 5300))
        for p in replica_ports(16, first, base)
    ]
    assert len(every) == len(set(every)) and not {5007, 8000} & set(every)
    assert ["worker", "events"] == [n for n in lines if n in ("worker", "events")]  # one each


def test_one_replica_keeps_the_procfile_names_and_ports():
    text = replicate(PROCFILE.read_text(encoding="utf-8"), 1)
    lines = {
        ln.split(":", 1)[0]: ln.split(":", 1)[1]
        for ln in text.splitlines()
        if ln and not ln.startswith("#")
    }
    assert "--port 5055" in lines["actions"] and "--port 5006" in lines["intake"]
    assert "ACTION_ENDPOINT_URL" not in lines["rasa1"]


def test_bad_replica_counts_are_refused(capsys):
    with pytest.raises(ValueError):
        replica_ports(0)
    assert main(["17", str(PROCFILE)]) == 2
    assert main(["two"]) == 2
    assert "usage" in capsys.readouterr().err


async def test_the_notifier_takes_turns_and_skips_a_replica_that_is_down():
    got = []

    async def inbox(request):
        got.append(
            (
                int(request.transport.get_extra_info("sockname")[1]),
                (await request.json())["senders"],
            )
        )
        return web.json_response({"kicked": 1})

    app = web.Application()
    app.router.add_post("/webhooks/wecom/inbox", inbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    up, down = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", up).start()
    try:
        urls = ",".join(f"http://127.0.0.1:{p}/webhooks/wecom/inbox" for p in (down, up))
        async with aiohttp.ClientSession() as http:
            notifier = RasaNotifier(urls, http)
            for sender in ("kf:a", "kf:b"):
                notifier.add(sender)
                assert await notifier.flush()
            assert got == [(up, ["kf:a"]), (up, ["kf:b"])] and notifier.failures == 0
            await runner.cleanup()  # now every replica is down: kept for the retry
            notifier.add("kf:c")
            assert not await notifier.flush()
            assert notifier.pending == {"kf:c"} and notifier.failures == 1
    finally:
        await runner.cleanup()

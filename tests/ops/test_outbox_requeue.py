"""`concierge outbox dead` / `requeue`: a dead send is listed (without its text), requeued, and
sent again exactly once by the outbox sweep."""

from __future__ import annotations

import json

from bot.cli import main as cli
from tests.wecom.test_client import fault


def sends(calls, path="/cgi-bin/message/send"):
    return [c for c in calls if c["path"] == path]


async def make_dead(env, s, text="顾问请注意：房间 1208 需要加床"):
    await fault(env, path="/cgi-bin/message/send", errcode=40003, times=1)
    result = await s.app.send_text("lisi", text, dedupe_key=f"page:{text}")
    assert result.status == "dead"
    return result.outbox_id


async def test_a_dead_send_is_listed_requeued_and_sent_again_once(env, db_url, capsys):
    s = env.services()
    dead_id = await make_dead(env, s)
    assert cli(["--database-url", db_url, "outbox", "dead", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["errcode"], r["recipient"]) for r in listed] == [
        (dead_id, 40003, "wecom:lisi")
    ]
    assert "加床" not in json.dumps(listed, ensure_ascii=False)  # where and why, never what

    assert cli(["--database-url", db_url, "outbox", "requeue", str(dead_id)]) == 0
    assert f"{dead_id}: requeued" in capsys.readouterr().out
    assert await s.retry_due() == 1
    assert await s.retry_due() == 0  # sent: not again
    calls = sends(await env.calls())
    assert [c.get("errcode") for c in calls] == [40003, 0]
    assert s.outbox.list_sync()[0].status == "sent"

    # a second requeue of the same row is refused: it is no longer dead
    assert cli(["--database-url", db_url, "outbox", "requeue", str(dead_id)]) == 1
    assert "not dead (sent)" in capsys.readouterr().out
    assert await s.retry_due() == 0
    assert len(sends(await env.calls())) == 2
    assert cli(["--database-url", db_url, "outbox", "dead"]) == 0
    assert "no dead sends" in capsys.readouterr().out


async def test_requeue_all_and_the_refusals(env, db_url, capsys):
    s = env.services()
    first = await make_dead(env, s, "一")
    second = await make_dead(env, s, "二")
    unsendable = await s.outbox.begin(
        "aibot", "(response_url used)", {"markdown": {}}, "wecom:u", "k1", status="dead"
    )
    assert cli(["--database-url", db_url, "outbox", "requeue", "--all"]) == 0
    out = capsys.readouterr().out
    assert f"{first}: requeued" in out and f"{second}: requeued" in out
    assert f"{unsendable}: not resendable" in out
    assert cli(["--database-url", db_url, "outbox", "requeue", "999999"]) == 1
    assert "999999: missing" in capsys.readouterr().out
    assert cli(["--database-url", db_url, "outbox", "requeue"]) == 2  # neither IDs nor --all
    assert cli(["--database-url", db_url, "outbox", "requeue", "1", "--all"]) == 2
    assert await s.retry_due() == 2
    assert len(sends(await env.calls())) == 4  # two failures, two resends


def test_the_listing_hides_webhook_keys():
    from bot.ops.outbox_cli import safe_path

    assert (
        safe_path("/cgi-bin/webhook/send?key=SECRET-1&debug=1")
        == "/cgi-bin/webhook/send?key=***&debug=1"
    )
    assert safe_path("/cgi-bin/message/send") == "/cgi-bin/message/send"


def test_an_unreachable_database_is_exit_2(capsys):
    assert (
        cli(["--database-url", "postgresql+psycopg2://nobody@127.0.0.1:1/x", "outbox", "dead"]) == 2
    )
    assert "unavailable" in capsys.readouterr().err

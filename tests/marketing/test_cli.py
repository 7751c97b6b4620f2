"""The issue's "done when", through the `concierge` commands, the demo data and the sandbox
(a real process on a free port): preview, send, the cap on a second send, T-3 once."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from bot.cli import main
from bot.crm.store import china_today
from bot.settings import PROJECT_ROOT, get_settings
from tests.wecom.helpers import free_port


@pytest.fixture
def sandbox_process(monkeypatch):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox", "--port", str(port)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/_sandbox/info", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    monkeypatch.setenv("WECOM_API_BASE", base)
    get_settings.cache_clear()
    yield base
    proc.terminate()
    proc.wait(10)


def sandbox_get(base, path):
    with urllib.request.urlopen(f"{base}{path}", timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture
def demo_env(monkeypatch, tmp_path):
    policy = tmp_path / "policy.yml"
    text = (PROJECT_ROOT / "data" / "marketing" / "policy.yml").read_text(encoding="utf-8")
    policy.write_text(
        text.replace(
            "cap: {period: month, limit: days_in_month}", "cap: {period: month, limit: 1}"
        ).replace('quiet_hours: {from: "22:00", to: "08:00"}', "quiet_hours: null"),
        encoding="utf-8",
    )
    monkeypatch.setenv("MARKETING_POLICY_FILE", str(policy))
    get_settings.cache_clear()
    assert main(["demo", "load"]) == 0


def accepted(base, path):
    """The calls to `path` WeCom accepted (errcode 0). A refused one (a token cached from another
    test's sandbox: 40014, then refreshed and retried) sent nothing."""
    calls = sandbox_get(base, f"/_sandbox/calls?path={path}")["calls"]
    return [c for c in calls if c.get("errcode") == 0]


def run_json(capsys, *argv):
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_done_when_with_the_demo_data(demo_env, sandbox_process, capsys):
    created = run_json(
        capsys,
        "campaign",
        "create",
        str(PROJECT_ROOT / "data/marketing/campaigns/member_day.yml"),
        "--json",
    )
    preview = run_json(capsys, "campaign", "preview", str(created["id"]), "--json")
    gold = {
        "demo-lin": "wm_demo_lin",
        "demo-chen": "wm_demo_chen",
        "kf:wm_guest_001": "wm_guest_001",
    }
    assert {r["sender_id"] for r in preview["recipient_list"]} == set(gold)
    assert {r["sender_id"]: r["reason"] for r in preview["left_out_list"]} == {
        "demo-sun": "no_consent",
        "demo-wang": "outside_segment",
        "demo-zhao": "outside_segment",
        "wecom:wm_guest_002": "outside_segment",
    }

    sent = run_json(capsys, "campaign", "send", str(created["id"]), "--json")
    assert sent["queued"] == 3
    calls = accepted(sandbox_process, "/cgi-bin/externalcontact/add_msg_template")
    names = {"wm_demo_lin": "林晓", "wm_demo_chen": "陈志远", "wm_guest_001": "周敏"}
    assert sorted(c["body"]["external_userid"][0] for c in calls) == sorted(gold.values())
    for c in calls:
        assert c["body"]["text"]["content"].startswith(names[c["body"]["external_userid"][0]])

    again = run_json(
        capsys,
        "campaign",
        "create",
        str(PROJECT_ROOT / "data/marketing/campaigns/member_day.yml"),
        "--json",
    )
    second = run_json(capsys, "campaign", "send", str(again["id"]), "--json")
    assert second["queued"] == 0 and second["left_out"] == {"no_consent": 1, "over_cap": 3}
    assert len(accepted(sandbox_process, "/cgi-bin/externalcontact/add_msg_template")) == 3

    report = run_json(capsys, "campaign", "report", str(created["id"]), "--json")
    assert report["recipients"] == {"left_out": 1, "queued": 3}

    lin_arrives = china_today() + dt.timedelta(days=6)
    now = f"{lin_arrives - dt.timedelta(days=3)}T10:00:00+08:00"
    first = run_json(capsys, "touchpoints", "run", "--now", now)
    assert [(e["sender_id"], e["kind"]) for e in first["sent"]] == [("demo-lin", "t_minus_3")]
    assert run_json(capsys, "touchpoints", "run", "--now", now)["sent"] == []
    calls = accepted(sandbox_process, "/cgi-bin/externalcontact/add_msg_template")
    t3 = [c for c in calls if "出行前" in c["body"]["text"]["content"]]
    assert len(t3) == 1 and t3[0]["body"]["external_userid"] == ["wm_demo_lin"]


def test_bad_input_gives_a_clear_error(demo_env, tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: x\nsegment: {tier_at_least: 金卡}\ntemplate: |\n  hi\n  {{ nme }}\n",
        encoding="utf-8",
    )
    assert main(["campaign", "create", str(bad)]) == 1
    assert "template line 2: unknown variable 'nme'" in capsys.readouterr().err
    bad.write_text("name: [unclosed", encoding="utf-8")
    assert main(["campaign", "create", str(bad)]) == 1
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["campaign", "preview", "999"]) == 1
    assert "no campaign #999" in capsys.readouterr().err
    assert main(["segment", "count", "no-such-segment"]) == 1
    assert "named segments: dormant_high_value, gold_and_above" in capsys.readouterr().err
    assert main(["touchpoints", "run", "--now", "tomorrow", "--dry-run"]) == 1
    counted = run_json(capsys, "segment", "count", "gold_and_above", "--json")
    assert counted["count"] == 3


def test_listings_that_name_guests_are_audited(demo_env, capsys):
    from bot.crm.store import CRMStore

    listed = run_json(
        capsys,
        "segment",
        "count",
        "gold_and_above",
        "--json",
        "--list",
        "5",
        "--actor",
        "cli:marketer_a",
    )
    assert len(listed["members"]) == 3
    created = run_json(
        capsys,
        "campaign",
        "create",
        str(PROJECT_ROOT / "data/marketing/campaigns/member_day.yml"),
        "--json",
    )
    run_json(
        capsys, "campaign", "preview", str(created["id"]), "--json", "--actor", "cli:marketer_a"
    )
    store = CRMStore()
    actions = {(a.actor, a.action) for a in store.audit_entries()}
    assert {("cli:marketer_a", "segment.list"), ("cli:marketer_a", "campaign.preview")} <= actions


def test_a_database_that_is_not_there_exits_2(tmp_path, capsys):
    assert (
        main(
            [
                "--database-url",
                "postgresql+psycopg2://postgres@127.0.0.1:1/x",
                "segment",
                "count",
                "gold_and_above",
            ]
        )
        == 2
    )
    assert "CRM database unavailable" in capsys.readouterr().err
    assert main(["--database-url", f"sqlite:///{tmp_path / 'empty.db'}", "campaign", "list"]) == 2
    assert "run `concierge db upgrade`" in capsys.readouterr().err

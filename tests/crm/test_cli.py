"""`concierge` commands, called through main(argv) on the test's own SQLite file
(tests/conftest.py points DATABASE_URL at tmp_path)."""

from __future__ import annotations

import json

import pytest

from bot.cli import build_parser, main
from bot.crm.store import CRMStore
from bot.settings import get_settings


@pytest.fixture
def demo_db(capsys):
    assert main(["demo", "load"]) == 0
    capsys.readouterr()


def test_db_upgrade_and_current(capsys):
    assert main(["db", "upgrade"]) == 0
    assert "CRM database at revision" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert "run `concierge db upgrade`" not in capsys.readouterr().out


def test_demo_load_twice(capsys):
    import yaml

    from bot.crm.demo import DEMO_FILE

    expected = len(yaml.safe_load(DEMO_FILE.read_text(encoding="utf-8"))["guests"])
    assert main(["demo", "load"]) == 0
    assert f"{expected} guests" in capsys.readouterr().out
    assert main(["demo", "load"]) == 0
    assert "(0 new rows)" in capsys.readouterr().out


def test_guest_show_json(demo_db, capsys):
    assert main(["guest", "show", "demo-lin", "--json", "--actor", "cli:test"]) == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile["guest"]["display_name"] == "林晓"
    assert profile["guest"]["phone"].startswith("138****")
    assert profile["bookings"][0]["property_id"] == "sanya-haitang-resort"
    assert profile["orders"][0]["status"] == "confirmed"
    assert profile["consent_state"] == {"marketing": True}
    store = CRMStore(get_settings().database_url)
    [entry] = store.audit_entries(action="profile.view")
    assert entry.actor == "cli:test" and entry.subject_id == "demo-lin"
    store.close()


def test_guest_show_human_readable(demo_db, capsys):
    assert main(["guest", "show", "demo-wang"]) == 0
    out = capsys.readouterr().out
    assert "王芳" in out and "银卡" in out and "家庭套房" in out and "Bookings:" in out


def test_guest_show_unknown_sender(demo_db, capsys):
    assert main(["guest", "show", "nobody", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no guest with sender id 'nobody'" in captured.err


def test_guest_list(demo_db, capsys):
    assert main(["guest", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["sender_id"] for r in rows][:4] == ["demo-lin", "demo-chen", "demo-wang", "demo-zhao"]
    assert len(rows) == 7
    assert "phone" not in rows[0]


def test_unreachable_database_exits_2(capsys):
    code = main(["--database-url", "postgresql+psycopg2://postgres@127.0.0.1:1/x", "guest", "list"])
    assert code == 2
    assert "CRM database unavailable" in capsys.readouterr().err


def test_unmigrated_database_says_what_to_do(capsys):
    assert main(["guest", "show", "demo-lin"]) == 2
    assert "concierge db upgrade" in capsys.readouterr().err


def test_parser_accepts_new_command_groups():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([])  # a command is required
    assert parser.parse_args(["guest", "show", "x"]).func.__name__ == "_guest_show"

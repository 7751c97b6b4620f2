"""`concierge nlu ...`, `concierge model ...`: output, exit codes, audit with who did it."""

from __future__ import annotations

import json
import shutil

import pytest

from bot.cli import main
from bot.crm.store import CRMStore
from bot.settings import PROJECT_ROOT, get_settings


@pytest.fixture
def env(tmp_path, monkeypatch, trackers, crm):
    monkeypatch.setenv("DATABASE_URL", str(crm.engine.url))
    monkeypatch.setenv("TRACKER_DATABASE_URL", trackers.url)
    monkeypatch.setenv("NLU_INBOX_HASH_KEY", "k")
    monkeypatch.setenv("MODEL_REGISTRY_DIR", str(tmp_path / "registry"))
    monkeypatch.setenv("MODEL_DEPLOYED_PATH", str(tmp_path / "deployed.tar.gz"))
    monkeypatch.setenv("RASA_URLS", "http://127.0.0.1:9")  # nothing listens there
    get_settings.cache_clear()
    return trackers


def test_inbox_json_then_label_refusal_and_discard(env, capsys, crm):
    t = env
    t.save(
        "kf:cli",
        [
            t.user(
                "今晚泳池开到几点呀亲",
                "nlu_fallback",
                0.18,
                [("ask_amenity", 0.17), ("out_of_scope", 0.1)],
            ),
            t.bot("抱歉，我没太明白。"),
        ],
    )
    assert main(["nlu", "inbox", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [(i["text"], i["count"], i["reasons"]) for i in items] == [
        ("今晚泳池开到几点呀亲", 1, {"fallback": 1})
    ]
    assert "kf:cli" not in json.dumps(items, ensure_ascii=False)
    item = items[0]["id"]
    assert main(["nlu", "show", str(item), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["context"][1]["who"] == "bot"
    # an intent the domain does not have: refused with the reason, item still open
    assert main(["nlu", "label", str(item), "ask_lottery", "--actor", "admin:wu"]) == 1
    assert "not in domain.yml" in capsys.readouterr().err
    assert main(["nlu", "label", str(item), "ask_amenity", "--entity", "oops"]) == 1
    assert main(["nlu", "discard", str(item), "--actor", "admin:wu", "--reason", "test"]) == 0
    assert main(["nlu", "discard", str(item)]) == 1
    assert "already discarded by admin:wu" in capsys.readouterr().err
    assert main(["nlu", "inbox", "--json", "--no-collect"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    audit = CRMStore(str(crm.engine.url)).audit_entries(subject_type="nlu_inbox_item")
    assert [(a.actor, a.action) for a in audit] == [
        ("admin:wu", "nlu.discard"),
        ("admin:wu", "nlu.label_refused"),
    ]


def test_label_writes_into_the_projects_training_data(env, capsys, tmp_path, monkeypatch):
    """Against a copy of the project, through the service the CLI builds."""
    from bot.training.service import build_training_loop

    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "data" / "nlu", root / "data" / "nlu")
    shutil.copytree(PROJECT_ROOT / "tests" / "nlu_holdout", root / "tests" / "nlu_holdout")
    shutil.copyfile(PROJECT_ROOT / "domain.yml", root / "domain.yml")
    t = env
    t.save("kf:x", [t.user("房间里能抽烟吗我想问下", "ask_amenity", 0.3)])
    loop = build_training_loop(get_settings(), project_root=root)
    try:
        assert loop.collect() == 1
        item = loop.inbox.items()[0]
        out = loop.inbox.label(item["id"], "ask_amenity", actor="admin:wu")
        assert out["label"]["file"] == "data/nlu/amenities.yml"
        assert "    - 房间里能抽烟吗我想问下\n" in (root / "data/nlu/amenities.yml").read_text(
            encoding="utf-8"
        )
    finally:
        loop.close()


def test_model_commands_without_versions_or_rasa(env, capsys):
    assert main(["model", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["model", "deploy", "20990101-000000-abcdef"]) == 1
    assert "no model version" in capsys.readouterr().err
    assert main(["model", "rollback"]) == 1
    assert "nothing to roll back to" in capsys.readouterr().err
    assert main(["model", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["deployed"] is None
    assert status["replicas"]["http://127.0.0.1:9"].startswith("unreachable")

"""Labelling writes valid, diff-friendly Rasa YAML into the topic files, never the held-out set."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.crm.store import CRMStore
from bot.nlu.labels import Entity, LabelRefused
from bot.settings import PROJECT_ROOT
from bot.training import models as m
from bot.training.inbox import DataPaths, InboxService, ItemClosed, ItemNotFound
from bot.training.text import group_key


@pytest.fixture
def project(tmp_path):
    shutil.copytree(PROJECT_ROOT / "data" / "nlu", tmp_path / "data" / "nlu")
    shutil.copytree(PROJECT_ROOT / "tests" / "nlu_holdout", tmp_path / "tests" / "nlu_holdout")
    shutil.copyfile(PROJECT_ROOT / "domain.yml", tmp_path / "domain.yml")
    return DataPaths(
        nlu_dir=tmp_path / "data" / "nlu",
        holdout_dir=tmp_path / "tests" / "nlu_holdout",
        domain=tmp_path / "domain.yml",
    )


def add_item(store: CRMStore, text: str) -> int:
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    with Session(store.engine, future=True) as s, s.begin():
        item = m.InboxItem(
            group_key=group_key(text), text=text, status="open", first_seen=now, last_seen=now
        )
        s.add(item)
        s.flush()
        s.add(
            m.InboxMessage(
                item_id=item.id,
                source="rasa",
                event_id=item.id,
                sender_hash="h",
                text=text,
                reasons=["fallback"],
                intent="nlu_fallback",
                confidence=0.2,
                ranking=[],
                context="[]",
                said_at=now,
            )
        )
        return item.id


def rasa_examples(path: Path):
    from rasa.shared.nlu.training_data.loading import load_data

    return {
        (e.get("intent"), e.get("text")): e.get("entities") or []
        for e in load_data(str(path)).intent_examples
    }


def test_label_appends_one_line_to_the_intents_topic_file(crm, project):
    svc = InboxService(crm.engine, crm, project)
    before = {p.name: p.read_text(encoding="utf-8") for p in project.nlu_dir.glob("*.yml")}
    item = add_item(crm, "泳池边能点外卖进来吃吗")
    out = svc.label(
        item, "ask_amenity", actor="admin:zhang", entities=[Entity("amenity", "泳池", "pool")]
    )
    assert out["status"] == "labelled"
    after = {p.name: p.read_text(encoding="utf-8") for p in project.nlu_dir.glob("*.yml")}
    changed = [name for name in after if after[name] != before.get(name)]
    assert changed == ["amenities.yml"]
    diff = [
        line
        for line in difflib.unified_diff(
            before["amenities.yml"].splitlines(), after["amenities.yml"].splitlines(), lineterm=""
        )
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert diff == ['+    - [泳池]{"entity": "amenity", "value": "pool"}边能点外卖进来吃吗']
    examples = rasa_examples(project.nlu_dir / "amenities.yml")
    ents = examples[("ask_amenity", "泳池边能点外卖进来吃吗")]
    assert [(e["entity"], e["value"], e["start"], e["end"]) for e in ents] == [
        ("amenity", "pool", 0, 2)
    ]
    audit = crm.audit_entries(subject_type="nlu_inbox_item", subject_id=item)
    assert [(a.actor, a.action) for a in audit] == [("admin:zhang", "nlu.label")]
    with pytest.raises(ItemClosed):
        svc.label(item, "ask_amenity", actor="admin:zhang")


def test_out_of_scope_goes_to_the_out_of_scope_file(crm, project):
    svc = InboxService(crm.engine, crm, project)
    item = add_item(crm, "帮我查下明天双色球开奖号码")
    svc.mark_out_of_scope(item, actor="admin:zhang")
    assert ("out_of_scope", "帮我查下明天双色球开奖号码") in rasa_examples(
        project.nlu_dir / "out_of_scope.yml"
    )


def test_a_held_out_text_is_refused_with_the_reason(crm, project):
    from rasa.shared.nlu.training_data.loading import load_data

    held = load_data(str(project.holdout_dir)).intent_examples[5]
    svc = InboxService(crm.engine, crm, project)
    item = add_item(crm, held.get("text") + " ")
    before = {p: p.read_text(encoding="utf-8") for p in project.nlu_dir.glob("*.yml")}
    with pytest.raises(LabelRefused, match="held-out set .*leak the test"):
        svc.label(item, held.get("intent"), actor="admin:zhang")
    assert {p: p.read_text(encoding="utf-8") for p in project.nlu_dir.glob("*.yml")} == before
    assert svc.item(item)["status"] == "open"
    audit = crm.audit_entries(subject_type="nlu_inbox_item", subject_id=item)
    assert audit[0].action == "nlu.label_refused" and "held-out" in audit[0].detail["reason"]


def test_unknown_intent_conflicting_text_and_missing_entity_are_refused(crm, project):
    svc = InboxService(crm.engine, crm, project)
    item = add_item(crm, "能帮我订个潜水吗明天下午")
    with pytest.raises(LabelRefused, match="not in domain.yml"):
        svc.label(item, "ask_lottery", actor="a")
    with pytest.raises(LabelRefused, match="not in the message"):
        svc.label(item, "order_addon", actor="a", entities=[Entity("addon_item", "浮潜")])
    from rasa.shared.nlu.training_data.loading import load_data

    existing = next(
        e
        for e in load_data(str(project.nlu_dir / "smalltalk.yml")).intent_examples
        if e.get("intent") == "greet"
    )
    clash = add_item(crm, existing.get("text"))
    with pytest.raises(LabelRefused, match="already a greet example"):
        svc.label(clash, "thank", actor="a")
    same = svc.label(clash, "greet", actor="a")
    assert same["label"]["written"] is False


def test_markup_characters_in_a_text_never_corrupt_the_file(crm, project):
    svc = InboxService(crm.engine, crm, project)
    item = add_item(crm, "房卡[坏了](怎么办)")
    before = (project.nlu_dir / "complaints.yml").read_text(encoding="utf-8")
    with pytest.raises(LabelRefused, match="Rasa would"):
        svc.label(item, "complain", actor="a")
    assert (project.nlu_dir / "complaints.yml").read_text(encoding="utf-8") == before


def test_discard_is_audited_and_missing_items_are_reported(crm, project):
    svc = InboxService(crm.engine, crm, project)
    item = add_item(crm, "哈哈哈哈哈哈")
    svc.discard(item, actor="admin:li", reason="noise")
    assert svc.items() == []
    assert svc.items(status="discarded")[0]["decided_by"] == "admin:li"
    assert (
        crm.audit_entries(subject_type="nlu_inbox_item", subject_id=item)[0].action == "nlu.discard"
    )
    with pytest.raises(ItemNotFound):
        svc.discard(999, actor="admin:li")
    with Session(crm.engine, future=True) as s:
        assert s.execute(select(m.InboxItem.status)).scalars().all() == ["discarded"]

"""The knowledge base: both demo properties load, amenities are keyed exactly, errors name the
file and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bot.knowledge.kb import KnowledgeBase, KnowledgeError

from .conftest import KNOWLEDGE_DIR

REQUIRED_AMENITIES = {
    "breakfast",
    "pool",
    "gym",
    "parking",
    "wifi",
    "laundry",
    "pet_policy",
    "kids_club",
    "meeting_room",
    "airport_pickup",
    "spa",
    "restaurant",
    "luggage",
}


@pytest.fixture
def kb_copy(tmp_path) -> Path:
    """A writable copy of the real knowledge directory, to break on purpose."""
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    KnowledgeBase.clear_cache()
    yield target
    KnowledgeBase.clear_cache()


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_both_demo_properties_load(kb):
    ids = [p.id for p in kb.properties()]
    assert ids == ["sanya-haitang-resort", "shanghai-bund-hotel"]
    sanya, shanghai = kb.property("sanya-haitang-resort"), kb.property("shanghai-bund-hotel")
    assert sanya.demo and shanghai.demo
    assert (sanya.city, sanya.type, sanya.checkin.time, sanya.checkout.time) == (
        "三亚",
        "resort",
        "15:00",
        "12:00",
    )
    assert (shanghai.city, shanghai.type) == ("上海", "city")
    assert sanya.checkout.late and "海棠" in sanya.address
    assert {r.key for r in sanya.directions} >= {"airport", "rail", "self_drive"}
    assert "凤凰" in next(r for r in sanya.directions if r.key == "airport").origin
    e = sanya.emergency
    assert (e.police, e.ambulance, e.fire, e.tourism_complaint) == ("110", "120", "119", "12345")
    assert e.hospital and e.hospital.demo_note and "中文" in e.hospital.languages
    assert sanya.dining_tips
    assert set(sanya.climate.months) == set(range(1, 13))
    assert set(sanya.climate.typhoon_season) <= set(sanya.climate.rainy_season)


def test_amenity_keys_are_exact(kb):
    assert set(kb.property("sanya-haitang-resort").amenities) == REQUIRED_AMENITIES
    shanghai = set(kb.property("shanghai-bund-hotel").amenities)
    assert shanghai < REQUIRED_AMENITIES
    assert {"pool", "kids_club"}.isdisjoint(shanghai)  # deliberately absent


def test_amenity_present_and_absent(kb):
    breakfast = kb.amenity("sanya-haitang-resort", "breakfast")
    assert breakfast is not None and breakfast.hours and breakfast.label == "早餐"
    assert kb.amenity("shanghai-bund-hotel", "pool") is None
    assert kb.amenity("shanghai-bund-hotel", "kids_club") is None
    assert kb.amenity("no-such-hotel", "breakfast") is None
    assert kb.amenity("sanya-haitang-resort", "golf") is None


def test_amenity_guest_words_resolve(kb):
    assert kb.amenity("sanya-haitang-resort", "游泳池").key == "pool"
    assert kb.resolve_amenity_key("儿童泳池几点开") == "pool"  # longest alias wins over 儿童...
    assert kb.resolve_amenity_key("wifi密码是多少") == "wifi"
    assert kb.resolve_amenity_key("可以带狗吗") == "pet_policy"
    assert kb.resolve_amenity_key("高尔夫") is None
    assert kb.amenity_label("kids_club") == "儿童俱乐部"
    assert kb.amenity_label("高尔夫球场") == "高尔夫球场"


def test_unknown_property_is_none_or_keyerror(kb):
    assert kb.property("nope") is None
    with pytest.raises(KeyError, match="nope"):
        kb.require("nope")


def test_load_is_cached_per_directory(kb):
    assert KnowledgeBase.load(KNOWLEDGE_DIR) is kb
    assert KnowledgeBase.load(str(KNOWLEDGE_DIR) + "/") is kb


def test_climate_by_city(kb):
    assert kb.climate("三亚") is kb.property("sanya-haitang-resort").climate
    assert kb.climate("上海市") is kb.property("shanghai-bund-hotel").climate
    assert kb.climate("拉萨") is None


def test_invalid_yaml_names_file_and_line(kb_copy):
    bad = kb_copy / "shanghai-bund-hotel.yml"
    bad.write_text("id: shanghai-bund-hotel\nname: [unclosed\n", encoding="utf-8")
    with pytest.raises(KnowledgeError) as err:
        KnowledgeBase.load(kb_copy)
    assert "shanghai-bund-hotel.yml" in str(err.value) and "line" in str(err.value)


def test_missing_key_names_file_and_key(kb_copy):
    _edit(kb_copy / "sanya-haitang-resort.yml", lambda d: d["checkin"].pop("time"))
    with pytest.raises(
        KnowledgeError, match=r"sanya-haitang-resort\.yml: 'checkin\.time' is required"
    ):
        KnowledgeBase.load(kb_copy)


def test_mistyped_value_names_key(kb_copy):
    _edit(
        kb_copy / "sanya-haitang-resort.yml",
        lambda d: d["amenities"]["breakfast"].update(summary=["not", "text"]),
    )
    with pytest.raises(KnowledgeError, match=r"'amenities\.breakfast\.summary' must be text"):
        KnowledgeBase.load(kb_copy)


def test_unknown_amenity_key_is_rejected(kb_copy):
    _edit(
        kb_copy / "shanghai-bund-hotel.yml",
        lambda d: d["amenities"].update(break_fast={"summary": "typo"}),
    )
    with pytest.raises(
        KnowledgeError,
        match=r"shanghai-bund-hotel\.yml: 'amenities\.break_fast' is not an amenity key",
    ):
        KnowledgeBase.load(kb_copy)


def test_id_must_match_file_name(kb_copy):
    _edit(kb_copy / "shanghai-bund-hotel.yml", lambda d: d.update(id="shanghai-other"))
    with pytest.raises(KnowledgeError, match="must match"):
        KnowledgeBase.load(kb_copy)


def test_climate_needs_all_months(kb_copy):
    _edit(kb_copy / "sanya-haitang-resort.yml", lambda d: d["climate"]["months"].pop(7))
    with pytest.raises(KnowledgeError, match=r"'climate\.months\.7' is required"):
        KnowledgeBase.load(kb_copy)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(KnowledgeError, match="does not exist"):
        KnowledgeBase.load(tmp_path / "nowhere")

"""Packing advice comes from rules in data/knowledge/packing_rules.yml, applied to the stay's
weather, the trip purpose and the kind of property."""

from __future__ import annotations

from datetime import date

import pytest
import yaml

from bot.knowledge.answers import Trip, packing_answer
from bot.knowledge.kb import KnowledgeError
from bot.knowledge.packing import PackingRules, WeatherSummary, advise

from .helpers import assert_clean, week


@pytest.fixture
def rules(kb) -> PackingRules:
    return PackingRules.load(kb.packing_rules_path)


def items_of(rules: PackingRules, rule_id: str) -> tuple[str, ...]:
    return next(r.items for r in rules.rules if r.id == rule_id)


def test_beach_honeymoon_in_the_sun(kb, rules):
    sunny = week(date(2026, 7, 10), 4, tmin=26, tmax=32, uv=11)
    weather = WeatherSummary.from_forecasts(sunny, rules.rain_threshold_mm)
    sanya = kb.property("sanya-haitang-resort")
    advice = advise(
        rules, weather, purpose="honeymoon", property_type=sanya.type, property_tags=sanya.tags
    )
    assert {"hot", "beach", "uv", "honeymoon"} <= set(advice.rule_ids)
    assert {"cold", "rain", "business", "city_walk"}.isdisjoint(advice.rule_ids)
    assert advice.purpose == "蜜月"

    text = packing_answer(
        Trip("sanya-haitang-resort", "三亚", date(2026, 7, 10), date(2026, 7, 13), purpose="蜜月"),
        sunny,
        kb=kb,
    )
    assert_clean(text)
    for rule_id in ("hot", "beach", "uv", "honeymoon"):
        for item in items_of(rules, rule_id):
            assert item in text
    for item in items_of(rules, "cold"):
        assert item not in text


def test_city_business_in_winter_rain(kb, rules):
    rainy = week(date(2026, 1, 12), 3, tmin=2, tmax=7, text="小雨", precip=6.0, uv=2)
    weather = WeatherSummary.from_forecasts(rainy, rules.rain_threshold_mm)
    assert weather.rain_days == 3 and weather.temp_max == 7
    shanghai = kb.property("shanghai-bund-hotel")
    advice = advise(
        rules, weather, purpose="出差", property_type=shanghai.type, property_tags=shanghai.tags
    )
    assert {"cold", "rain", "cold_rain", "business", "city_walk"} <= set(advice.rule_ids)
    assert {"hot", "beach", "uv", "honeymoon"}.isdisjoint(advice.rule_ids)

    text = packing_answer(
        Trip("shanghai-bund-hotel", "上海", date(2026, 1, 12), date(2026, 1, 14), purpose="商务"),
        rainy,
        kb=kb,
    )
    assert_clean(text)
    for rule_id in ("cold", "rain", "cold_rain", "business"):
        for item in items_of(rules, rule_id):
            assert item in text
    for item in items_of(rules, "beach") + items_of(rules, "uv"):
        assert item not in text


def test_beyond_the_forecast_uses_climate_norms(kb, rules):
    trip = Trip("shanghai-bund-hotel", "上海", date(2026, 1, 12), date(2026, 1, 14), purpose="商务")
    text = packing_answer(trip, [], kb=kb)
    assert_clean(text)
    norm = kb.climate("上海").month(1)
    assert "往年同期" in text and f"{norm.low}~{norm.high}°C" in text
    for item in items_of(rules, "cold"):
        assert item in text  # January Shanghai norms are cold


def test_no_purpose_no_purpose_line(kb, rules):
    sunny = week(date(2026, 7, 10), 2, tmin=26, tmax=32, uv=11)
    text = packing_answer(
        Trip("sanya-haitang-resort", "三亚", date(2026, 7, 10), date(2026, 7, 11)), sunny, kb=kb
    )
    assert "此行" not in text and items_of(rules, "beach")[0] in text


def test_purpose_aliases(rules):
    assert rules.canonical_purpose("蜜月旅行") == "蜜月"
    assert rules.canonical_purpose("family") == "亲子"
    assert rules.canonical_purpose("结婚纪念日") == "纪念日"
    assert rules.canonical_purpose("看演唱会") is None
    assert rules.canonical_purpose(None) is None


def test_bad_rule_is_a_clear_error(kb, tmp_path):
    data = yaml.safe_load(kb.packing_rules_path.read_text(encoding="utf-8"))
    data["rules"][0]["when"] = {"temperature_above": 30}
    bad = tmp_path / "packing_rules.yml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(
        KnowledgeError, match=r"packing_rules\.yml: 'rules\[0\]\.when\.temperature_above'"
    ):
        PackingRules.load(bad)

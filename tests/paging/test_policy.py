"""The SLA policy file: the shipped ones load, and every mistake is reported with its path."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
import yaml

from bot.paging.policy import (
    KNOWN_CLASSES,
    PolicyError,
    format_duration,
    load_policy,
    parse_duration,
    parse_policy,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "sla_policy.yml"
FAST = ROOT / "tests" / "fixtures" / "sla_policy_fast.yml"


def _fast_data() -> dict:
    return yaml.safe_load(FAST.read_text(encoding="utf-8"))


def _problems(data) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(data, "test.yml")
    return info.value.problems


def test_demo_policy_has_spec_durations_and_someone_on_duty_around_the_clock():
    policy = load_policy(DEMO)
    assert set(KNOWN_CLASSES) <= set(policy.classes)
    routine = policy.sla_class("complaint_routine")
    assert routine.ack_within == dt.timedelta(minutes=10)
    assert routine.resolve_within == dt.timedelta(hours=2)
    assert policy.sla_class("complaint_major").ack_within == dt.timedelta(minutes=30)
    order = policy.sla_class("addon_order")
    assert (order.ack_within, order.resolve_within) == (
        dt.timedelta(minutes=10),
        dt.timedelta(hours=1),
    )
    human = policy.sla_class("human_request")
    assert human.ack_within == dt.timedelta(minutes=5) and human.service_hours_only
    default = policy.property("default")
    assert any(
        w.start == 0 and w.end == 1440 and len(w.days) == 7
        for a in default.roster
        for w in a.on_duty
    )
    assert default.emergency_group.webhook.startswith("http://127.0.0.1:8800/")
    assert default.supervisors and default.duty_manager


def test_fast_policy_is_in_seconds():
    policy = load_policy(FAST)
    assert all(c.ack_within <= dt.timedelta(seconds=30) for c in policy.classes.values())


def test_unknown_property_falls_back_to_default_and_overrides_apply():
    policy = load_policy(DEMO)
    assert policy.property("no-such-hotel").id == "default"
    assert policy.sla_class("complaint_routine", "sanya-haitang-resort").label.endswith(
        "（三亚海棠湾）"
    )
    # the override inherits what it does not say
    assert policy.sla_class("complaint_routine", "sanya-haitang-resort").ack_within == dt.timedelta(
        minutes=10
    )
    # and the property inherits default's roster
    assert policy.property("sanya-haitang-resort").roster == policy.property("default").roster


def test_settings_path_is_used_when_none_given(monkeypatch):
    monkeypatch.setenv("SLA_POLICY_FILE", str(FAST))
    from bot.settings import get_settings

    get_settings.cache_clear()
    assert load_policy().source == str(FAST)


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        (90, 90),
        ("0.5s", 0.5),
        (" 5 m ", 300),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "ten minutes", "10x", -5, True, None, "m"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration_in_chinese():
    assert format_duration(dt.timedelta(minutes=10)) == "10分钟"
    assert format_duration(dt.timedelta(hours=1, minutes=30)) == "1小时30分钟"
    assert format_duration(dt.timedelta(seconds=5)) == "5秒"
    assert format_duration(dt.timedelta(days=15)) == "15天"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "nope.yml")


def test_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("version: 1\nclasses: [\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="line"):
        load_policy(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.yml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(PolicyError):
        load_policy(path)


def test_every_problem_is_reported_with_its_path():
    data = _fast_data()
    data["timezone"] = "Mars/Olympus"
    data["classes"]["complaint_routine"]["ack_within"] = "soon"
    data["classes"]["complaint_routine"]["steps"][2]["notify"] = ["supervsor"]
    data["classes"]["addon_order"]["steps"][1]["after"] = "resolve_by"
    data["properties"]["default"]["roster"][0]["on_duty"][0]["from"] = "25:00"
    data["properties"]["default"]["surprise"] = 1
    del data["classes"]["data_deletion"]
    problems = _problems(data)
    text = "\n".join(problems)
    assert "timezone: unknown time zone 'Mars/Olympus'" in text
    assert "classes.complaint_routine.ack_within: expected a duration" in text
    assert "classes.complaint_routine.steps[2].notify[0]: unknown target 'supervsor'" in text
    assert "classes.addon_order.steps[1].after: expected a duration" in text
    assert "properties.default.roster[0].on_duty[0].from: expected a time" in text
    assert "properties.default.surprise: unknown key" in text
    assert "missing class 'data_deletion'" in text
    assert len(problems) >= 7


def test_error_message_lists_problems_one_per_line():
    data = _fast_data()
    data["version"] = 2
    with pytest.raises(PolicyError) as info:
        parse_policy(data, "x.yml")
    assert "invalid SLA policy x.yml: 1 problem(s)" in str(info.value)
    assert "version: unsupported version 2" in str(info.value)


def test_targets_must_exist_at_each_property():
    data = _fast_data()
    data["properties"]["default"]["supervisors"] = []
    data["properties"]["default"].pop("emergency_group")
    text = "\n".join(_problems(data))
    assert (
        "properties.default.supervisors: steps escalate to 'supervisor' but none is listed" in text
    )
    assert "properties.default.emergency_group: steps post to 'emergency_group'" in text


def test_empty_roster_is_an_error_when_steps_page_on_duty():
    data = _fast_data()
    data["properties"]["default"]["roster"] = []
    assert any("roster is empty" in p for p in _problems(data))


def test_resolve_step_needs_resolve_within():
    data = _fast_data()
    del data["classes"]["complaint_routine"]["resolve_within"]
    assert any("'resolve' needs the class to have resolve_within" in p for p in _problems(data))


def test_resolve_shorter_than_ack_is_an_error():
    data = _fast_data()
    data["classes"]["addon_order"]["resolve_within"] = "5s"
    assert any("shorter than ack_within" in p for p in _problems(data))


def test_duplicate_step_and_advisor_names():
    data = _fast_data()
    steps = data["classes"]["complaint_routine"]["steps"]
    steps.append(copy.deepcopy(steps[0]))
    roster = data["properties"]["default"]["roster"]
    roster.append(copy.deepcopy(roster[0]))
    text = "\n".join(_problems(data))
    assert "step name 'page' used twice" in text
    assert "advisor 'advisor_li' listed twice" in text


def test_bad_days_holidays_and_webhook():
    data = _fast_data()
    prop = data["properties"]["default"]
    prop["service_hours"] = [{"days": ["mon", "funday"], "from": "09:00", "to": "09:00"}]
    prop["holidays"] = [
        "2026-13-01",
        {"date": "2026-10-01", "hours": [{"from": "x", "to": "10:00"}]},
    ]
    prop["emergency_group"]["webhook"] = "ftp://example"
    text = "\n".join(_problems(data))
    assert "properties.default.service_hours[0]: empty window 09:00-09:00" in text
    assert "properties.default.holidays[0]: expected a date" in text
    assert "properties.default.holidays[1].hours[0].from: expected a time" in text
    assert "properties.default.emergency_group.webhook: expected an http(s) URL" in text
    prop["service_hours"] = [{"days": ["mon", "funday"], "from": "09:00", "to": "18:00"}]
    assert any("service_hours[0].days[1]: unknown day 'funday'" in p for p in _problems(data))


def test_override_of_unknown_class_and_missing_default_property():
    data = _fast_data()
    data["properties"]["hotel-x"] = {"classes": {"vip_thing": {"ack_within": "1m"}}}
    data["properties"]["hotel-y"] = data["properties"].pop("default")
    text = "\n".join(_problems(data))
    assert "missing 'default'" in text
    assert "properties.hotel-x.classes.vip_thing: overrides a class that is not under" in text


def test_not_a_mapping():
    assert _problems(["a", "list"]) == ["expected a mapping, got list"]


def test_unquoted_times_are_read_as_yaml_sexagesimal_and_still_work():
    data = yaml.safe_load(
        FAST.read_text(encoding="utf-8").replace('"00:00", to: "24:00"', "00:00, to: 23:59")
    )
    policy = parse_policy(data, "x.yml")
    assert policy.property("default").roster[0].on_duty[0].end == 23 * 60 + 59


def test_require_classes_can_be_relaxed_for_a_small_policy():
    data = _fast_data()
    data["classes"] = {"complaint_routine": data["classes"]["complaint_routine"]}
    policy = parse_policy(data, "x.yml", require_classes=())
    assert list(policy.classes) == ["complaint_routine"]

"""Knowledge base, catalogue and SLA policy edits take effect without a restart; a file that
fails validation is refused and the running version stays; `concierge data check` says why."""

from __future__ import annotations

import json
import shutil

import pytest

from bot.cli import main
from bot.live import Live
from bot.settings import PROJECT_ROOT, get_settings


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_live_reloads_a_changed_file_and_keeps_the_running_version_on_a_bad_one(tmp_path):
    f = tmp_path / "v.json"
    f.write_text('{"v": 1}')
    clock = Clock()
    live = Live(lambda: json.loads(f.read_text()), [f], name="test", check_every_s=2, clock=clock)
    assert live.current == {"v": 1}
    f.write_text('{"v": 2, "x": 0}')
    assert live.current == {"v": 1}  # not checked again yet
    clock.t = 2.5
    assert live.current == {"v": 2, "x": 0}
    f.write_text('{"v": 3,')  # broken
    clock.t = 5
    assert live.current == {"v": 2, "x": 0}
    assert "Expecting" in live.last_error
    f.write_text('{"v": 4}')  # fixed: tried again although the last try failed
    clock.t = 7.5
    assert live.current == {"v": 4} and live.last_error is None
    assert live.get("v") == 4  # stands in for the value


def test_a_bad_first_load_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        Live(lambda: (tmp_path / "missing").read_text(), [tmp_path / "missing"], name="x")


@pytest.fixture
def kb_dir(tmp_path, monkeypatch):
    d = tmp_path / "knowledge"
    shutil.copytree(PROJECT_ROOT / "data" / "knowledge", d)
    monkeypatch.setenv("KNOWLEDGE_DIR", str(d))
    get_settings.cache_clear()
    return d


def test_the_running_services_see_a_knowledge_base_edit_and_survive_a_bad_one(kb_dir):
    from bot.services import build_services

    services = build_services(get_settings())
    prop = "sanya-haitang-resort"
    assert services.kb.property(prop).checkin.time == "15:00"
    f = kb_dir / f"{prop}.yml"
    good = f.read_text(encoding="utf-8")
    f.write_text(good.replace('time: "15:00"', 'time: "14:00"', 1), encoding="utf-8")
    assert services.kb.refresh() is None
    assert services.kb.property(prop).checkin.time == "14:00"
    # the pre-trip service holds the same live knowledge base
    assert services.pretrip.kb.property(prop).checkin.time == "14:00"
    f.write_text(good.replace("checkin:\n", "checkin: [\n", 1), encoding="utf-8")
    assert services.kb.refresh()  # refused, with the loader's reason
    assert services.kb.property(prop).checkin.time == "14:00"
    services.store.close()


def test_data_check_names_the_failing_file_and_exits_1(kb_dir, capsys):
    assert main(["data", "check", "--json"]) == 0
    assert all(c["ok"] for c in json.loads(capsys.readouterr().out))
    f = kb_dir / "shanghai-bund-hotel.yml"
    f.write_text(
        f.read_text(encoding="utf-8").replace("checkin:\n", "checkin: [\n", 1), encoding="utf-8"
    )
    assert main(["data", "check"]) == 1
    out = capsys.readouterr().out
    # `file: what is wrong`, the file being the one at fault, not just the folder
    line = next(x for x in out.splitlines() if x.startswith("FAIL"))
    assert line.startswith(f"FAIL knowledge base: {f}: line ") and "invalid YAML" in line
    assert "ok   add-on catalogue" in out


def test_sla_policy_edits_reach_the_promises_without_a_restart(tmp_path, monkeypatch):
    from bot.datafiles import live_policy
    from bot.sla_terms import SlaTerms

    policy = tmp_path / "sla.yml"
    text = (PROJECT_ROOT / "data" / "sla_policy.yml").read_text(encoding="utf-8")
    policy.write_text(text, encoding="utf-8")
    terms = SlaTerms(policy)
    assert terms.promise("human_request").ack_text == "5分钟"
    live = live_policy(str(policy))
    policy.write_text(text.replace("ack_within: 5m ", "ack_within: 3m ", 1), encoding="utf-8")
    assert live.refresh() is None
    assert terms.promise("human_request").ack_text == "3分钟"
    policy.write_text("classes: [broken", encoding="utf-8")
    assert live.refresh()
    assert terms.promise("human_request").ack_text == "3分钟"
    live_policy.cache_clear()

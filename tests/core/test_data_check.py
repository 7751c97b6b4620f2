"""`concierge data check` (bot.datafiles.check_all): every data file admins edit is checked by
the loader that serves it, and a refusal names `file: what is wrong`."""

from __future__ import annotations

import shutil

import pytest

from bot.datafiles import check_all
from bot.settings import PROJECT_ROOT, load_settings

DATA = PROJECT_ROOT / "data"

# check name, environment variable, shipped file, a breaking edit (old, new), words of the reason
CASES = [
    (
        "SLA policy",
        "SLA_POLICY_FILE",
        "sla_policy.yml",
        ("ack_within: 5m", "ack_within: soon"),
        "soon",
    ),
    ("marketing policy", "MARKETING_POLICY_FILE", "marketing/policy.yml", None, "not valid YAML"),
    ("touchpoints", "TOUCHPOINTS_FILE", "marketing/touchpoints.yml", None, "not valid YAML"),
    ("console staff", "CONSOLE_STAFF_FILE", "console_staff.yml", None, "not valid YAML"),
    ("canned replies", "CONSOLE_CANNED_REPLIES_FILE", "canned_replies.yml", None, "not valid YAML"),
]


def test_every_shipped_data_file_passes():
    checks = check_all(load_settings(), names=None)
    assert [c.line for c in checks if not c.ok] == []
    assert {
        "SLA policy",
        "marketing policy",
        "touchpoints",
        "console staff",
        "canned replies",
        "WeCom corp tags",
        "demo guests",
        "knowledge base",
        "add-on catalogue",
        "complaint rules",
        "preference vocabulary",
        "NLU training data",
    } <= {c.name for c in checks}


@pytest.mark.parametrize("name,env,shipped,edit,words", CASES)
def test_a_broken_file_is_named_with_the_reason(
    tmp_path, monkeypatch, name, env, shipped, edit, words
):
    broken = tmp_path / "broken.yml"
    text = (DATA / shipped).read_text(encoding="utf-8")
    if edit is None:
        text = text + "\n  - [unclosed\n"
    else:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1], 1)
    broken.write_text(text, encoding="utf-8")
    monkeypatch.setenv(env, str(broken))
    [check] = check_all(load_settings(), names=[name])
    assert not check.ok
    assert check.file == str(broken)
    assert check.line.startswith(f"FAIL {name}: {broken}: ") and words in check.line


def test_a_file_in_a_folder_is_named_itself(tmp_path, monkeypatch):
    kb = tmp_path / "knowledge"
    shutil.copytree(DATA / "knowledge", kb)
    hotel = kb / "shanghai-bund-hotel.yml"
    hotel.write_text(
        hotel.read_text(encoding="utf-8").replace("checkin:\n", "checkin: [\n", 1), encoding="utf-8"
    )
    monkeypatch.setenv("KNOWLEDGE_DIR", str(kb))
    [check] = check_all(load_settings(), names=["knowledge base"])
    assert (check.ok, check.file) == (False, str(hotel))


def test_a_loader_bug_is_reported_not_raised(monkeypatch):
    import bot.console.staff as staff

    def broken(path):
        raise KeyError("roles")

    monkeypatch.setattr(staff, "load_staff_file", broken)
    [check] = check_all(load_settings(), names=["console staff"])
    assert not check.ok and check.detail.startswith("KeyError")

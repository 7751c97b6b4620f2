"""bot.sla_terms: the guest's promises come from the SLA policy, and nothing else. A policy that
does not load stops the process at start, with a message naming the file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.settings import PROJECT_ROOT
from bot.sla_terms import CLASSES, SlaPolicyUnavailable, SlaTerms

POLICY = PROJECT_ROOT / "data" / "sla_policy.yml"


def test_promises_follow_the_policy_file(tmp_path):
    policy = tmp_path / "sla.yml"
    text = POLICY.read_text(encoding="utf-8")
    assert "ack_within: 5m " in text
    policy.write_text(text.replace("ack_within: 5m ", "ack_within: 7m ", 1), encoding="utf-8")
    assert SlaTerms(policy).check().promise("human_request").ack_text == "7分钟"


@pytest.mark.parametrize("content", [None, "steps: [\n", "timezone: Asia/Shanghai\n"])
def test_a_policy_that_does_not_load_fails_loudly(tmp_path, content):
    policy = tmp_path / "sla.yml"
    if content is not None:
        policy.write_text(content, encoding="utf-8")
    terms = SlaTerms(policy)
    with pytest.raises(SlaPolicyUnavailable, match=str(policy)):
        terms.check()
    # and a turn that asks for a promise gets the same error, never a built-in number
    with pytest.raises(SlaPolicyUnavailable):
        terms.promise("complaint_routine")


def test_build_flows_refuses_a_broken_policy(tmp_path):
    from bot.flows import build_flows

    broken = tmp_path / "sla.yml"
    broken.write_text("steps: [\n", encoding="utf-8")
    with pytest.raises(SlaPolicyUnavailable):
        build_flows(store=None, terms=SlaTerms(broken), spool=object())


def test_every_class_the_flows_promise_is_in_the_shipped_policy():
    policy = SlaTerms(POLICY).check()._load()
    assert all(policy.has_class(c) for c in CLASSES)


def test_action_server_does_not_start_with_a_broken_policy(tmp_path):
    broken = tmp_path / "sla.yml"
    broken.write_text("steps: [\n", encoding="utf-8")
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(PROJECT_ROOT),
        "CONCIERGE_ENV": "test",
        "SLA_POLICY_FILE": str(broken),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
        "RASA_TELEMETRY_ENABLED": "false",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot.actions_main", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(PROJECT_ROOT),
    )
    assert done.returncode != 0
    assert "SlaPolicyUnavailable" in done.stderr and str(broken) in done.stderr

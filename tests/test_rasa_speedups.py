"""The cached action-response validator accepts and rejects exactly what Rasa's own check does."""
from __future__ import annotations

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot.rasa_speedups import cache_action_response_validator

GOOD = {"events": [{"event": "slot", "name": "pending_topic", "value": None}],
        "responses": [{"text": "您好"}]}
BAD = {"events": [{"no_event_key": 1}], "responses": []}


@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(RemoteAction, "_validate_action_result",
                        RemoteAction._validate_action_result)  # restored after the test
    original = RemoteAction._validate_action_result
    cache_action_response_validator()
    assert RemoteAction._validate_action_result is not original
    return RemoteAction("action_answer_weather", None)


def test_valid_answer_passes(patched):
    assert patched._validate_action_result(GOOD) is True


def test_invalid_answer_raises_the_same_error_as_rasa(patched):
    with pytest.raises(ValidationError) as ours:
        patched._validate_action_result(BAD)
    assert "Failed to validate Action server response" in ours.value.message

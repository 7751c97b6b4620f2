"""Rasa's own conversation tests (`rasa test core` on tests/test_stories.yml) against the trained
model, with the action server running so custom actions really execute."""

from __future__ import annotations

import subprocess

import pytest

from bot.settings import PROJECT_ROOT

from .conftest import MODEL, RASA

pytestmark = pytest.mark.rasa_model


def test_conversation_stories_pass(rasa_stack, tmp_path):
    result = subprocess.run(
        [
            RASA,
            "test",
            "core",
            "--model",
            str(MODEL),
            "--stories",
            "tests/test_stories.yml",
            "--endpoints",
            str(rasa_stack.endpoints),
            "--out",
            str(tmp_path),
            "--fail-on-prediction-errors",
        ],
        cwd=PROJECT_ROOT,
        env=rasa_stack.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text(encoding="utf-8") if failed.exists() else ""
    assert result.returncode == 0, (
        f"rasa test core failed (exit {result.returncode}).\n{details}\n{result.stdout[-4000:]}"
        f"\n{result.stderr[-4000:]}"
    )

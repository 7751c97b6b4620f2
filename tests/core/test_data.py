"""bot.core.data.read_yaml and the DataError base the data loaders' errors share."""

from __future__ import annotations

import pytest

from bot.core.data import read_yaml
from bot.core.errors import DataError


def test_reads_yaml(tmp_path):
    path = tmp_path / "x.yml"
    path.write_text("a: [1, 2]\nb: 早餐\n", encoding="utf-8")
    assert read_yaml(path) == {"a": [1, 2], "b": "早餐"}


def test_missing_and_broken_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="cannot read .*missing.yml"):
        read_yaml(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(DataError, match="broken.yml: not valid YAML"):
        read_yaml(broken)


def test_the_callers_error_class_is_raised(tmp_path):
    from bot.marketing.policy import PolicyError

    with pytest.raises(PolicyError):
        read_yaml(tmp_path / "missing.yml", PolicyError)


@pytest.mark.parametrize(
    "path,name",
    [
        ("bot.paging.policy", "PolicyError"),
        ("bot.marketing.policy", "PolicyError"),
        ("bot.marketing.touchpoints", "TouchpointConfigError"),
        ("bot.marketing.segments", "SegmentError"),
        ("bot.console.staff", "StaffFileError"),
        ("bot.knowledge.kb", "KnowledgeError"),
        ("bot.orders.catalogue", "CatalogueError"),
        ("bot.complaints.classifier", "RulesError"),
        ("bot.preferences.vocabulary", "VocabularyError"),
    ],
)
def test_data_file_errors_are_data_errors_and_still_value_errors(path, name):
    import importlib

    cls = getattr(importlib.import_module(path), name)
    assert issubclass(cls, DataError) and issubclass(cls, ValueError)

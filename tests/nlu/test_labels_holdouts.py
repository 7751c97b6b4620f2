"""Labelling refuses texts of either held-out set (bot/nlu/labels.py)."""

from __future__ import annotations

from bot.nlu.labels import held_out_intent


def write_set(folder, intent, lines):
    folder.mkdir(parents=True)
    body = "\n".join(f"    - {line}" for line in lines)
    (folder / "holdout.yml").write_text(
        f'version: "3.1"\nnlu:\n- intent: {intent}\n  examples: |\n{body}\n', encoding="utf-8"
    )


def test_texts_of_both_held_out_sets_are_found(tmp_path):
    write_set(tmp_path / "nlu_holdout", "greet", ["你好呀"])
    write_set(tmp_path / "nlu_holdout_independent", "thank", ["多謝幫忙"])
    first = held_out_intent("你好呀", tmp_path / "nlu_holdout")
    second = held_out_intent("多谢帮忙", tmp_path / "nlu_holdout")  # compared after normalisation
    assert first[0] == "greet" and first[1].parent.name == "nlu_holdout"
    assert second[0] == "thank" and second[1].parent.name == "nlu_holdout_independent"
    assert held_out_intent("几点退房", tmp_path / "nlu_holdout") is None


def test_a_missing_independent_set_is_no_error(tmp_path):
    write_set(tmp_path / "nlu_holdout", "greet", ["你好呀"])
    assert held_out_intent("多谢帮忙", tmp_path / "nlu_holdout") is None

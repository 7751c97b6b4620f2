"""The metric code of bot.nlu.evaluate on small hand-made predictions (no model needed)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bot.nlu import evaluate as ev

IDENT = lambda s: s.strip().lower()  # noqa: E731 - a normaliser that does nothing Chinese-specific


# --------------------------------------------------------------------------------------------
# intents
# --------------------------------------------------------------------------------------------
def test_macro_f1_averages_over_gold_intents():
    golds = ["a", "a", "b", "b"]
    preds = ["a", "a", "a", "b"]
    rep = ev.intent_report(golds, preds)
    # a: P=2/3 R=1 F1=0.8 ; b: P=1 R=0.5 F1=2/3
    assert rep["per_intent"]["a"]["f1"] == pytest.approx(0.8)
    assert rep["per_intent"]["b"]["f1"] == pytest.approx(2 / 3)
    assert rep["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert rep["accuracy"] == pytest.approx(0.75)
    assert rep["per_intent"]["b"]["support"] == 2


def test_fallback_counts_as_out_of_scope_in_intent_metrics():
    golds = ["out_of_scope", "greet"]
    preds = ["nlu_fallback", "nlu_fallback"]
    rep = ev.intent_report(golds, preds)
    assert rep["per_intent"]["out_of_scope"]["recall"] == 1.0
    assert rep["per_intent"]["greet"]["recall"] == 0.0
    assert rep["accuracy"] == 0.5


def test_predicted_intent_missing_from_gold_does_not_enter_the_average():
    rep = ev.intent_report(["a", "a"], ["a", "zzz"])
    assert set(rep["per_intent"]) == {"a"}
    assert rep["macro_f1"] == pytest.approx(2 / 3)  # a: P=1, R=0.5


def test_intent_report_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        ev.intent_report(["a"], ["a", "b"])


def test_confused_pairs_sorted_by_count_and_skip_fallback_on_oos():
    golds = ["complain", "complain", "complain", "greet", "out_of_scope", "ask_weather"]
    preds = ["praise", "praise", "complain", "thank", "nlu_fallback", "nlu_fallback"]
    pairs = ev.confused_pairs(golds, preds)
    assert pairs[0] == ("complain", "praise", 2)
    assert ("out_of_scope", "nlu_fallback", 1) not in pairs  # that is the right answer
    assert ("ask_weather", "nlu_fallback", 1) in pairs  # a fallback on an in-scope message is not
    assert ("greet", "thank", 1) in pairs
    assert len(ev.confused_pairs(golds, preds, top=1)) == 1


# --------------------------------------------------------------------------------------------
# out of scope and fallback
# --------------------------------------------------------------------------------------------
def test_oos_recall_accepts_out_of_scope_and_fallback():
    golds = ["out_of_scope"] * 4 + ["greet"]
    preds = ["out_of_scope", "nlu_fallback", "greet", "ask_weather", "greet"]
    assert ev.oos_recall(golds, preds) == pytest.approx(0.5)


def test_false_fallback_counts_only_fallback_on_in_scope():
    golds = ["greet", "greet", "complain", "complain", "out_of_scope"]
    preds = ["nlu_fallback", "greet", "out_of_scope", "complain", "nlu_fallback"]
    assert ev.false_fallback_rate(golds, preds) == pytest.approx(0.25)
    # out_of_scope predicted for an in-scope message is not a fallback, but the bot ignores it too
    assert ev.in_scope_rejected_rate(golds, preds) == pytest.approx(0.5)


def test_rates_are_none_when_the_set_has_no_such_messages():
    assert ev.oos_recall(["greet"], ["greet"]) is None
    assert ev.false_fallback_rate(["out_of_scope"], ["out_of_scope"]) is None


# --------------------------------------------------------------------------------------------
# fallback decision and threshold sweep
# --------------------------------------------------------------------------------------------
def test_decide_follows_rasa_fallback_semantics():
    assert ev.decide([("a", 0.5), ("b", 0.1)], 0.3, 0.05) == "a"
    assert ev.decide([("a", 0.29), ("b", 0.1)], 0.3, 0.05) == "nlu_fallback"  # below threshold
    assert ev.decide([("a", 0.5), ("b", 0.47)], 0.3, 0.05) == "nlu_fallback"  # ambiguous
    assert ev.decide([("a", 0.3)], 0.3, 0.5) == "a"  # one intent: no ambiguity check; < is strict
    assert ev.decide([], 0.3, 0.05) == "nlu_fallback"


def test_sweep_picks_best_oos_recall_within_false_fallback_limit():
    # in-scope messages: confident except one at 0.45; OOS messages: 0.35 and 0.55
    golds = ["a"] * 9 + ["b"] + ["out_of_scope"] * 2
    rankings = (
        [[("a", 0.9), ("b", 0.05)]] * 9
        + [[("b", 0.45), ("a", 0.3)]]
        + [[("a", 0.35), ("b", 0.3)], [("b", 0.55), ("a", 0.2)]]
    )
    sweep = ev.sweep_thresholds(
        golds, rankings, thresholds=[0.3, 0.4, 0.5, 0.6], ambiguities=[0.0], max_false_fallback=0.0
    )
    best = sweep["best"]
    # 0.4 catches one OOS message without touching in-scope ones; 0.5 would fall back on "b".
    assert best["threshold"] == 0.4
    assert best["oos_recall"] == pytest.approx(0.5)
    assert best["false_fallback_rate"] == 0.0
    loose = ev.sweep_thresholds(
        golds, rankings, thresholds=[0.3, 0.4, 0.5, 0.6], ambiguities=[0.0], max_false_fallback=0.1
    )["best"]
    assert loose["threshold"] == 0.6 and loose["oos_recall"] == 1.0


def test_sweep_has_no_best_when_nothing_is_feasible():
    sweep = ev.sweep_thresholds(
        ["a"], [[("a", 0.1)]], thresholds=[0.5], ambiguities=[0.0], max_false_fallback=0.0
    )
    assert sweep["best"] is None
    assert "No threshold pair" in ev.format_sweep(sweep)


# --------------------------------------------------------------------------------------------
# entities
# --------------------------------------------------------------------------------------------
def test_entity_exact_span_and_value_after_synonyms():
    text = "有泳池吗，还有健身房"
    gold = [
        {"entity": "amenity", "start": 1, "end": 3, "value": "泳池"},
        {"entity": "amenity", "start": 7, "end": 10, "value": "健身房"},
    ]
    pred = [
        {"entity": "amenity", "start": 1, "end": 3, "value": "pool"},  # synonym-mapped: right
        {"entity": "amenity", "start": 7, "end": 9, "value": "健身"},
    ]  # span too short: wrong
    synonyms = {"泳池": "pool"}
    g = ev.entity_keys(gold, text, IDENT, synonyms)
    p = ev.entity_keys(pred, text, IDENT)
    rep = ev.entity_report([g], [p])
    assert rep["precision"] == pytest.approx(0.5)
    assert rep["recall"] == pytest.approx(0.5)
    assert rep["by_type"]["amenity"]["support"] == 2


def test_entity_wrong_value_or_type_is_not_a_match():
    text = "两位大人"
    gold = [{"entity": "party_size", "start": 0, "end": 2, "value": "2"}]
    wrong_value = [{"entity": "party_size", "start": 0, "end": 2, "value": "3"}]
    wrong_type = [{"entity": "amenity", "start": 0, "end": 2, "value": "2"}]
    g = ev.entity_keys(gold, text, IDENT, {})
    for pred in (wrong_value, wrong_type):
        rep = ev.entity_report([g], [ev.entity_keys(pred, text, IDENT)])
        assert rep["f1"] == 0.0
    rep = ev.entity_report([g], [ev.entity_keys(wrong_type, text, IDENT)])
    assert rep["by_type"]["amenity"]["precision"] == 0.0  # a spurious type is reported
    assert rep["by_type"]["party_size"]["recall"] == 0.0


def test_two_extractors_finding_the_same_entity_count_once():
    text = "有泳池吗"
    gold = [{"entity": "amenity", "start": 1, "end": 3, "value": "泳池"}]
    pred = [
        dict(gold[0], extractor="RegexEntityExtractor"),
        dict(gold[0], extractor="CRFEntityExtractor"),
    ]
    rep = ev.entity_report(
        [ev.entity_keys(gold, text, IDENT, {})], [ev.entity_keys(pred, text, IDENT)]
    )
    assert rep["precision"] == 1.0 and rep["recall"] == 1.0


def test_entity_spans_are_compared_as_normalised_text():
    # The model returns normalised text (traditional -> simplified), so offsets refer to it.
    t2s = str.maketrans("熱", "热")
    norm = lambda s: s.translate(t2s).strip()  # noqa: E731
    gold = ev.entity_keys(
        [{"entity": "amenity", "start": 0, "end": 2, "value": "热水"}], "熱水沒了", norm, {}
    )
    pred = ev.entity_keys(
        [{"entity": "amenity", "start": 0, "end": 2, "value": "热水"}], "热水沒了", norm
    )
    assert gold == pred


def test_entity_report_counts_per_type_and_over_messages():
    g = [Counter({("a", "x", "x"): 1}), Counter({("b", "y", "y"): 2})]
    p = [Counter({("a", "x", "x"): 1}), Counter({("b", "y", "y"): 1, ("a", "z", "z"): 1})]
    rep = ev.entity_report(g, p)
    assert rep["by_type"]["a"]["precision"] == 0.5 and rep["by_type"]["a"]["recall"] == 1.0
    assert rep["by_type"]["b"]["precision"] == 1.0 and rep["by_type"]["b"]["recall"] == 0.5
    assert rep["precision"] == pytest.approx(2 / 3) and rep["recall"] == pytest.approx(2 / 3)


def test_convert_example_keeps_entity_offsets_right_when_lengths_change():
    ex = ev.Example(
        "ab订cd", "order_addon", [{"entity": "item", "start": 3, "end": 5, "value": "cd"}]
    )
    doubled = ev.convert_example(ex, lambda s: "".join(ch * 2 for ch in s))
    ent = doubled.entities[0]
    assert doubled.text[ent["start"] : ent["end"]] == "ccdd"
    assert ent["value"] == "cd"  # gold values are canonical and stay as annotated


def test_summarize_puts_the_figures_together():
    examples = [
        ev.Example("我要投诉", "complain"),
        ev.Example("空调坏了", "complain"),
        ev.Example("讲个笑话", "out_of_scope"),
        ev.Example("你好", "greet"),
    ]
    preds = [
        ev.Prediction("complain", 0.9, [("complain", 0.9), ("greet", 0.05)], ms=2.0),
        ev.Prediction("nlu_fallback", 0.2, [("complain", 0.2), ("greet", 0.19)], ms=4.0),
        ev.Prediction("nlu_fallback", 0.25, [("greet", 0.25), ("complain", 0.2)], ms=6.0),
        ev.Prediction("greet", 0.95, [("greet", 0.95)], ms=8.0),
    ]
    s = ev.summarize(examples, preds, IDENT, {})
    assert s["complain_recall"] == 0.5
    assert s["oos_recall"] == 1.0
    assert s["false_fallback_rate"] == pytest.approx(1 / 3)
    assert s["classifier_only"]["complain_recall"] == 1.0  # the classifier had it right
    assert s["ms_per_message"]["mean"] == pytest.approx(5.0)
    assert s["confidence_histogram"]["out_of_scope"][2] == 1
    checks = ev.check_targets(s, dict(s, macro_f1=s["macro_f1"] - 0.05))
    assert checks["complain_recall"] is False and checks["oos_recall"] is True
    assert checks["traditional_macro_f1_drop"] is False
    report = ev.format_report(s, s)
    assert "complain recall" in report and "MISSED" in report


# --------------------------------------------------------------------------------------------
# the jsonl input
# --------------------------------------------------------------------------------------------
def _write(tmp_path, lines):
    p = tmp_path / "set.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_jsonl_reads_examples_and_skips_blank_lines(tmp_path):
    p = _write(
        tmp_path,
        [
            json.dumps({"text": "你好", "intent": "greet"}, ensure_ascii=False),
            "",
            json.dumps(
                {
                    "text": "有泳池吗",
                    "intent": "ask_amenity",
                    "entities": [{"entity": "amenity", "start": 1, "end": 3}],
                },
                ensure_ascii=False,
            ),
        ],
    )
    exs = ev.load_jsonl(p)
    assert [e.intent for e in exs] == ["greet", "ask_amenity"]
    assert exs[0].has_entity_annotations is False
    assert exs[1].entities[0]["value"] == "泳池"


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"text": "你好", "intent": "greet"', "not valid JSON"),
        ('["你好", "greet"]', "expected a JSON object"),
        ('{"text": "你好"}', 'missing "intent"'),
        ('{"intent": "greet"}', 'missing "text"'),
        ('{"text": "", "intent": "greet"}', '"text" must be a non-empty string'),
        ('{"text": "你好", "intent": 3}', '"intent" must be a non-empty string'),
        ('{"text": "你好", "intent": "greet", "entities": {}}', '"entities" must be a list'),
        (
            '{"text": "你好", "intent": "greet", "entities": [{"entity": "x", "start": 1, "end": 9}]}',
            "within the text",
        ),
    ],
)
def test_jsonl_malformed_line_names_the_line(tmp_path, bad, message):
    p = _write(tmp_path, ['{"text": "你好", "intent": "greet"}', "", bad])
    with pytest.raises(ev.InputFormatError) as err:
        ev.load_jsonl(p)
    assert f"{p}:3:" in str(err.value)
    assert message in str(err.value)


def test_jsonl_empty_file_is_an_error(tmp_path):
    p = _write(tmp_path, [""])
    with pytest.raises(ev.InputFormatError, match="no examples"):
        ev.load_jsonl(p)


def test_main_reports_malformed_input_with_exit_code_2(tmp_path, capsys):
    p = _write(tmp_path, ['{"text": "你好", "intent": "greet"}', "oops"])
    assert ev.main(["--input", str(p), "--model", str(tmp_path / "none.tar.gz")]) == 2
    assert f"{p}:2:" in capsys.readouterr().err


def test_span_only_matching_ignores_the_value():
    text = "早餐没有热菜"
    gold = [{"entity": "complaint_category", "start": 0, "end": 6, "value": "breakfast"}]
    pred = [{"entity": "complaint_category", "start": 0, "end": 6, "value": "早餐没有热菜"}]
    exact = ev.entity_report(
        [ev.entity_keys(gold, text, IDENT, {})], [ev.entity_keys(pred, text, IDENT)]
    )
    span = ev.entity_report(
        [ev.entity_keys(gold, text, IDENT, None, match_value=False)],
        [ev.entity_keys(pred, text, IDENT, match_value=False)],
    )
    assert exact["f1"] == 0.0
    assert span["f1"] == 1.0


def test_sweep_ties_go_to_the_more_cautious_thresholds():
    golds = ["a", "out_of_scope"]
    rankings = [[("a", 0.9), ("b", 0.05)], [("b", 0.2), ("a", 0.1)]]
    best = ev.sweep_thresholds(
        golds, rankings, thresholds=[0.3, 0.5, 0.7], ambiguities=[0.0], max_false_fallback=0.0
    )["best"]
    assert (
        best["threshold"] == 0.7
    )  # all three catch the OOS message and keep "a": ask, don't guess


# --------------------------------------------------------------------------------------------
# issue-17 figures
# --------------------------------------------------------------------------------------------
def test_praise_taken_for_a_complaint_is_a_rate_over_praise_only():
    golds = ["praise", "praise", "praise", "praise", "complain"]
    preds = ["complain", "praise", "nlu_fallback", "praise", "complain"]
    assert ev.praise_as_complain_rate(golds, preds) == pytest.approx(0.25)
    assert ev.praise_as_complain_rate(["greet"], ["complain"]) is None


def test_closing_recall_counts_thanks_and_goodbyes_as_labelled():
    golds = ["thank", "thank", "goodbye", "goodbye", "greet"]
    preds = ["thank", "goodbye", "goodbye", "nlu_fallback", "thank"]
    assert ev.closing_recall(golds, preds) == pytest.approx(0.5)
    assert ev.closing_recall(["greet"], ["greet"]) is None


def test_summary_has_the_issue_17_figures_and_targets():
    examples = [
        ev.Example("很好", "praise"),
        ev.Example("谢谢", "thank"),
        ev.Example("有泳池吗", "ask_amenity"),
        ev.Example("有桑拿吗", "ask_amenity"),
    ]
    preds = [
        ev.Prediction("complain", 0.6, [("complain", 0.6)], ms=10.0),
        ev.Prediction("thank", 0.9, [("thank", 0.9)], ms=20.0),
        ev.Prediction("ask_amenity", 0.9, [("ask_amenity", 0.9)], ms=30.0),
        ev.Prediction("out_of_scope", 0.5, [("out_of_scope", 0.5)], ms=40.0),
    ]
    s = ev.summarize(examples, preds, IDENT, {})
    assert s["praise_as_complain_rate"] == 1.0 and s["closing_recall"] == 1.0
    assert s["amenity_recall"] == 0.5
    assert s["p95_ms"] == pytest.approx(38.5)
    checks = ev.check_targets(s, None)
    assert checks["praise_as_complain_rate"] is False and checks["closing_recall"] is True
    assert checks["amenity_recall"] is False and checks["p95_ms"] is False
    summary = {
        "simplified": s,
        "traditional": s,
        "targets_met": checks,
        "targets_met_traditional": checks,
    }
    text = ev.format_headline(
        {"nlu_holdout": summary, "nlu_holdout_independent": summary},
        {"rss_mb": 900.0, "full_training_s": 45.0},
    )
    assert "nlu_holdout_independent" in text and "praise->complain" in text
    assert "RSS" in text and "MISSED" in text  # 900 MB is over the 800 MB target
    assert ev.check_process_targets({"rss_mb": 900.0, "full_training_s": 45.0}) == {
        "rss_mb": False,
        "full_training_s": True,
    }


def test_main_refuses_a_missing_holdout(tmp_path, capsys):
    assert (
        ev.main(["--holdout", str(tmp_path / "nope.yml"), "--model", str(tmp_path / "m.tar.gz")])
        == 2
    )
    assert "nope.yml" in capsys.readouterr().err


def test_rss_is_measured():
    assert ev.rss_mb() > 10


def test_second_opinion_cost_splits_catches_from_false_alarms():
    golds = ["complain", "complain", "praise", "ask_weather", "out_of_scope"]
    preds = [
        ev.Prediction("complain", 0.7, [], raised_complaint=True),
        ev.Prediction("complain", 0.9, []),
        ev.Prediction("complain", 0.7, [], raised_complaint=True),
        ev.Prediction("ask_weather", 0.9, []),
        ev.Prediction("out_of_scope", 0.9, []),
    ]
    cost = ev.second_opinion_cost(golds, preds)
    assert cost["complaints"] == {"raised": 1, "of": 2, "rate": 0.5}
    assert cost["praise"]["raised"] == 1 and cost["neutral"]["raised"] == 0
    assert cost["out_of_scope"]["rate"] == 0.0

"""The benchmark's statistics code: percentiles, run summaries, the ratio table. No timing here:
speed is measured by `make bench`, never asserted in tests."""

from __future__ import annotations

import pytest

from bench.conversations import SCRIPTS, Guest, SenderPool, story_lines
from bench.report import comparison_rows, render
from bench.stats import Row, RunResult, format_table, latency_summary, percentile, ratio


def test_percentile_interpolates_like_numpy_linear():
    data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert percentile(data, 0) == 1
    assert percentile(data, 100) == 10
    assert percentile(data, 50) == pytest.approx(5.5)
    assert percentile(data, 95) == pytest.approx(9.55)
    assert percentile(data, 99) == pytest.approx(9.91)
    assert percentile(reversed(data), 50) == pytest.approx(5.5)  # order does not matter


def test_percentile_edge_cases():
    assert percentile([], 50) is None
    assert percentile([42.0], 99) == 42.0
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


def test_latency_summary_is_in_milliseconds():
    s = latency_summary([0.1, 0.2, 0.3])
    assert s["p50"] == pytest.approx(200.0)
    assert s["max"] == pytest.approx(300.0)
    assert s["mean"] == pytest.approx(200.0)
    assert s["n"] == 3
    empty = latency_summary([])
    assert empty["p95"] is None and empty["n"] == 0


def test_run_result_throughput_and_dict():
    r = RunResult(
        name="saturation",
        mode="closed",
        duration_s=10,
        ok=250,
        errors=1,
        timeouts=2,
        latencies=[0.05] * 250,
        ack_latencies=[0.004] * 250,
    )
    assert r.throughput == 25.0
    d = r.as_dict()
    assert d["throughput"] == 25.0
    assert d["reply_ms"]["p99"] == 50.0
    assert d["ack_ms"]["p50"] == 4.0
    assert (d["errors"], d["timeouts"]) == (1, 2)


def test_ratio_and_direction():
    assert ratio(150, 30) == 5.0
    assert ratio(None, 30) is None and ratio(1, 0) is None
    faster = Row("throughput", 150, 30, "msg/s", better="higher")
    assert faster.speedup == 5.0
    quicker = Row("p95", 50, 400, "ms")  # lower is better: 8x better
    assert quicker.ratio == pytest.approx(0.125)
    assert quicker.speedup == pytest.approx(8.0)
    assert Row("x", None, 3).speedup is None


def test_format_table_aligns_and_marks_missing():
    text = format_table(
        [Row("throughput", 150, 30, "msg/s", better="higher"), Row("回复 p95", 50.0, None, "ms")],
        title="t",
    )
    lines = text.splitlines()
    assert lines[0] == "t"
    assert "5.00" in lines[3] and "5.0x" in lines[3]
    assert lines[4].rstrip().endswith("-")  # no baseline figure: no ratio


def test_comparison_rows_from_results_json():
    results = {
        "meta": {"guests": 5, "duration_s": 3, "cpus": 2},
        "training": {"ours": {"seconds": 40}, "baseline": {"seconds": 200}},
        "stacks": {
            "ours": {
                "runs": {
                    "rest": {
                        "saturation": {"throughput": 120, "reply_ms": {"p50": 30}},
                        "fixed_rate": {"offered_rate": 12.5, "reply_ms": {"p95": 60}},
                    }
                },
                "memory": {"rasa": {"peak_rss_mb": 500}},
            },
            "baseline": {
                "runs": {
                    "rest": {
                        "saturation": {"throughput": 25, "reply_ms": {"p50": 900}},
                        "fixed_rate": {"offered_rate": 12.5, "reply_ms": {"p95": 600}},
                    }
                },
                "memory": {"rasa": {"peak_rss_mb": 1500}},
            },
        },
    }
    rows = {r.label: r for r in comparison_rows(results)}
    assert rows["REST: throughput at saturation"].speedup == pytest.approx(4.8)
    assert rows["REST: reply p95 @12.5/s"].speedup == pytest.approx(10.0)
    assert rows["training time (full, no cache)"].speedup == pytest.approx(5.0)
    assert rows["peak RSS rasa (with children)"].speedup == pytest.approx(3.0)
    assert "REST: throughput at saturation" in render(results)


def test_guests_take_distinct_senders_and_cycle_scripts():
    pool = SenderPool(["a", "b", "c"])
    g1, g2 = Guest(0, pool), Guest(1, pool)
    g1.next_text(), g2.next_text()
    assert g1.sender != g2.sender
    assert g1.script != g2.script
    first = g1.sender
    for _ in range(len(SCRIPTS[g1.script]) - 1):
        g1.next_text()
    g1.next_text()  # the next conversation: the next free sender
    assert g1.sender != first and g1.sender != g2.sender
    g1.done(), g2.done()
    assert pool.extra == 0


def test_story_lines_parse_entity_markup():
    lines = story_lines()
    assert any("早餐几点开始" in line for story in lines for line in story)
    assert not any("[" in line or "](" in line for story in lines for line in story)


def test_profile_charges_the_outermost_owner_and_sets_idle_apart():
    from bench.profile import RASA_CATEGORIES, categorize

    root = "_run_module_as_main (runpy.py:196)"
    store = "save (/x/site-packages/rasa/core/tracker_store.py:1456)"
    sqla = "do_commit (/x/site-packages/sqlalchemy/engine/default.py:686)"
    connector = "_handle_kf (/work/main/connectors/wecom.py:599)"
    logreg = "process (/x/site-packages/rasa/nlu/classifiers/logistic_regression_classifier.py:150)"
    idle = "serve (/x/site-packages/sanic/server/runners.py:155)"
    cats = categorize(
        [
            ([root, connector, store, sqla], 3),
            ([root, connector, logreg], 2),
            ([root, connector], 1),
            ([root, sqla], 4),
            ([root, idle], 7),
        ],
        RASA_CATEGORIES,
    )
    assert cats["tracker store (SQL)"] == 3  # not SQLAlchemy, not the connector
    assert cats["NLU LogisticRegressionClassifier"] == 2
    assert cats["WeCom connector (crypto, inbox, API)"] == 1
    assert cats["SQLAlchemy (other)"] == 4
    assert cats["(idle)"] == 7

"""The complaint second opinion (bot/complaints/second_opinion.py): what it raises, what it leaves
alone, and a malformed cue file."""

from __future__ import annotations

import pytest

from bot.complaints.second_opinion import (
    ComplaintSecondOpinion,
    CuesError,
    false_alarm_rate,
    load_cues,
    parse_cues,
)
from bot.nlu.normalizer import normalize


@pytest.fixture(scope="module")
def op():
    return ComplaintSecondOpinion()


def score(op, text):
    return op.score(normalize(text))


@pytest.mark.parametrize(
    "text",
    [
        "房间太吵了，一晚上没睡好",
        "这个价格真的不值",
        "我要投诉你们前台",
        "服务还行，就是早餐太难吃了",  # praise, then a complaint after the contrast
        "早餐难吃死了 服务倒是很好",  # a strong cue is not cancelled by praise
        "前台爱答不理的",
        "房間衛生一言難盡",  # traditional characters are normalised first
    ],
)
def test_complaints_are_raised(op, text):
    assert score(op, text).complaint, score(op, text)


@pytest.mark.parametrize(
    "text",
    [
        "房间很干净 好评",
        "一点都不吵 很满意",  # negated cue, praise
        "本来担心很吵 结果很安静",  # a feared problem that did not happen
        "退房可以延迟到几点",  # 延迟到 holds 迟到 but is no complaint
        "明天早餐几点开始",
        "谢谢你们 下次还来",
    ],
)
def test_praise_and_neutral_messages_are_not_raised(op, text):
    assert not score(op, text).complaint, score(op, text)


def test_weak_cues_need_company(op):
    assert not score(op, "有点吵").complaint  # one weak cue: 0.5
    assert score(op, "有点吵 又脏").complaint  # two weak cues: 1.0


def test_judge_leaves_a_complaint_and_the_listed_intents_alone(op):
    text = normalize("太差了 我要投诉")
    assert op.judge(text, "ask_weather").complaint
    assert not op.judge(text, "complain").complaint  # nothing to add
    assert not op.judge(text, "request_human").complaint  # listed in not_over


def test_out_of_scope_needs_the_higher_score(op):
    one_cue = normalize("邻居家装修很吵")  # one strong cue (很吵): 1.0
    assert op.score(one_cue).score == pytest.approx(1.0)
    assert not op.judge(one_cue, "out_of_scope").complaint
    two = normalize("太差了 我要投诉")
    assert op.judge(two, "out_of_scope").complaint


def test_cues_are_reported(op):
    opinion = score(op, "房间太脏 呵呵")
    assert "strong:太脏" in opinion.cues and "sarcasm:呵呵" in opinion.cues


def test_false_alarm_rate_counts_raised_texts(op):
    texts = [normalize(t) for t in ["房间很干净", "太差了", "几点退房", "隔音太差"]]
    assert false_alarm_rate(op, texts) == pytest.approx(0.5)
    assert false_alarm_rate(op, []) is None


def test_the_shipped_cue_file_loads():
    cues = load_cues()
    assert cues.strong and cues.praise and "complain" not in cues.not_over


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "expected a mapping"),
        ({"strong": []}, "no strong cues"),
        ({"strong": ["差"], "weak": "吵"}, "weak must be a list"),
        ({"strong": ["差"], "threshold": "high"}, "threshold must be a number"),
        ({"strong": ["差"], "threshold_over": ["out_of_scope"]}, "threshold_over a mapping"),
    ],
)
def test_malformed_cues_are_refused(data, message):
    with pytest.raises(CuesError, match=message):
        parse_cues(data, "cues.yml")


def test_unreadable_cue_file_names_the_file(tmp_path):
    bad = tmp_path / "cues.yml"
    bad.write_text("strong: [a\n", encoding="utf-8")
    with pytest.raises(CuesError, match="cues.yml"):
        load_cues(bad)

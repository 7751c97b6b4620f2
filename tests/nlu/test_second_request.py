"""Two things in one message: the clause detector (bot/nlu/second_request.py) and the answer
action running the second request next (actions/second_request.py)."""

from __future__ import annotations

import pytest
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from rasa.shared.nlu.training_data.message import Message

from actions.second_request import then_second_request
from bot.nlu.catalogue_entities import AMENITIES_FILE, CATALOGUE_FILE, read_tables
from bot.nlu.normalizer import normalize
from bot.nlu.second_request import (
    SecondRequestDetector,
    SecondRequestError,
    clauses,
    detect,
    load_cues,
)
from tests.actions.helpers import tracker_for


@pytest.fixture(scope="module")
def cues():
    joiners, intents = load_cues()
    return joiners, intents, list(read_tables(CATALOGUE_FILE, AMENITIES_FILE)["addon_item"])


def test_clauses_are_cut_at_punctuation_and_joiners():
    assert clauses("天气怎么样？顺便帮我订个接机", ["顺便"]) == ["天气怎么样", "帮我订个接机"]
    assert clauses("几点退房", ["顺便"]) == ["几点退房"]


@pytest.mark.parametrize(
    "text, main, expected",
    [
        ("天气怎么样？顺便帮我订个接机", "ask_weather", ("order_addon", "帮我订个接机", None)),
        # the classifier chose the order: the question is answered first, the order follows
        (
            "天气怎么样？顺便帮我订个接机",
            "order_addon",
            ("order_addon", "帮我订个接机", "ask_weather"),
        ),
        ("几点可以入住？再帮我转人工", "ask_checkin_time", ("request_human", "转人工", None)),
    ],
)
def test_a_second_request_is_found(cues, text, main, expected):
    assert detect(normalize(text), main, *cues) == expected


@pytest.mark.parametrize(
    "text, main",
    [
        ("明天退房，几点之前", "ask_checkout_time"),  # one request in two clauses
        ("三亚天气如何，要带什么", "ask_packing"),  # the packing answer gives the weather too
        ("空调坏了，帮我安排人修一下", "complain"),  # "安排" but no catalogue item
        ("帮我订个接机", "order_addon"),  # one clause
    ],
)
def test_no_second_request(cues, text, main):
    assert detect(normalize(text), main, *cues) is None


def test_component_swaps_the_order_behind_the_question():
    m = Message(data={"text": normalize("天气怎么样？顺便帮我订个接机")})
    m.set("intent", {"name": "order_addon", "confidence": 0.55})
    m.set(
        "intent_ranking",
        [{"name": "order_addon", "confidence": 0.55}, {"name": "ask_weather", "confidence": 0.3}],
    )
    SecondRequestDetector({}).process([m])
    # both are answered: no reason for the FallbackClassifier to ask again
    assert m.get("intent") == {"name": "ask_weather", "confidence": 0.6}
    assert [r["name"] for r in m.get("intent_ranking")] == ["ask_weather"]
    assert m.get("second_request") == {"intent": "order_addon", "text": "帮我订个接机"}


def test_a_near_tie_between_the_two_requests_does_not_fall_back():
    m = Message(data={"text": normalize("天气怎么样？顺便帮我订个接机")})
    m.set("intent", {"name": "ask_weather", "confidence": 0.41})
    m.set(
        "intent_ranking",
        [
            {"name": "ask_weather", "confidence": 0.41},
            {"name": "order_addon", "confidence": 0.405},
            {"name": "greet", "confidence": 0.1},
        ],
    )
    SecondRequestDetector({}).process([m])
    ranking = m.get("intent_ranking")
    assert [r["name"] for r in ranking] == ["ask_weather", "greet"]
    # the floor (0.6) beats 0.41 and greet's 0.1 + the 0.1 margin; greet keeps its own confidence
    assert [r["confidence"] for r in ranking] == pytest.approx([0.6, 0.1])


def test_malformed_cue_file_is_refused(tmp_path):
    bad = tmp_path / "cues.yml"
    bad.write_text("intents:\n  ask_weather: 天气\n", encoding="utf-8")
    with pytest.raises(SecondRequestError, match="ask_weather"):
        load_cues(bad)


def tracker_with_second(intent, second):
    tracker = tracker_for("guest-1", "天气怎么样？顺便帮我订个接机", intent)
    tracker.latest_message["second_request"] = second
    return tracker


def test_the_answer_action_runs_the_order_form_next_and_says_so():
    dispatcher = CollectingDispatcher()
    events = then_second_request(
        dispatcher,
        tracker_with_second("ask_weather", {"intent": "order_addon", "text": "帮我订个接机"}),
        "ask_weather",
    )
    assert events == [FollowupAction("addon_order_form")]
    assert "帮我订个接机" in dispatcher.messages[0]["text"]


def test_a_followed_up_action_does_not_chain_again():
    tracker = tracker_with_second("ask_weather", {"intent": "ask_packing", "text": "要带什么"})
    # action_answer_packing runs as the follow-up: the message's intent is not its own
    assert then_second_request(CollectingDispatcher(), tracker, "ask_packing") == []


def test_a_pending_question_only_acknowledges_the_second_request():
    dispatcher = CollectingDispatcher()
    events = then_second_request(
        dispatcher,
        tracker_with_second("ask_weather", {"intent": "order_addon", "text": "帮我订个接机"}),
        "ask_weather",
        waiting=True,
    )
    assert events == [] and "帮我订个接机" in dispatcher.messages[0]["text"]


def test_unknown_second_intents_are_ignored():
    tracker = tracker_with_second("ask_weather", {"intent": "praise", "text": "你们真好"})
    assert then_second_request(CollectingDispatcher(), tracker, "ask_weather") == []


def test_the_order_form_reads_the_order_clause_of_a_two_request_message():
    from actions.orders import intent_of, text_of

    tracker = tracker_with_second("ask_weather", {"intent": "order_addon", "text": "帮我订个接机"})
    assert text_of(tracker) == "帮我订个接机" and intent_of(tracker) == "order_addon"
    plain = tracker_for("guest-1", "我下周去三亚", "inform")
    assert text_of(plain) == "我下周去三亚" and intent_of(plain) == "inform"
    complaint = tracker_for("guest-1", "太差了 顺便帮我订个接机", "complain")
    complaint.latest_message["second_request"] = {"intent": "order_addon", "text": "帮我订个接机"}
    assert intent_of(complaint) == "complain"  # only the pre-trip answers chain into the form

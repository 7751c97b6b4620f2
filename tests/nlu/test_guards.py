"""The NLU components of issue 17 on Rasa messages (no trained model needed): the near-domain and
complaint guards, the catalogue and JioNLP entity extractors."""

from __future__ import annotations

import os
import time

import pytest
import yaml
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.catalogue_entities import CatalogueEntityExtractor
from bot.nlu.complaint_guard import ComplaintGuard
from bot.nlu.normalizer import normalize
from bot.nlu.overrule import overrule_intent
from bot.nlu.scope_guard import NearDomainGuard
from bot.nlu.when_entities import JioNLPWhenExtractor
from bot.scope import HUMAN_OFFER, NearDomainError, load_near_domain, parse_near_domain


def message(text, intent, confidence=0.5, ranking=None, entities=None):
    m = Message(data={"text": normalize(text)})
    m.set("intent", {"name": intent, "confidence": confidence})
    m.set(
        "intent_ranking",
        ranking
        or [{"name": intent, "confidence": confidence}, {"name": "other", "confidence": 0.1}],
    )
    m.set("entities", list(entities or []))
    return m


# ---- near domain ------------------------------------------------------------------------------
def guard_near():
    return NearDomainGuard(NearDomainGuard.get_default_config())


def test_taxi_app_request_becomes_out_of_scope_with_its_category():
    m = guard_near().process([message("帮我叫个滴滴去外滩", "order_addon", 0.55)])[0]
    assert m.get("intent")["name"] == "out_of_scope"
    # 0.55 + the 0.1 margin: above the FallbackClassifier's threshold
    assert m.get("intent")["confidence"] == pytest.approx(0.65)
    assert m.get("intent_ranking")[0]["name"] == "out_of_scope"
    assert m.get("near_domain") == "ride_hailing"


def test_sure_in_scope_and_kept_intents_are_not_overruled():
    sure = guard_near().process([message("别的酒店的早餐几点", "ask_amenity", 0.95)])[0]
    assert sure.get("intent")["name"] == "ask_amenity" and sure.get("near_domain") is None
    kept = guard_near().process([message("外卖骑手进了我的房间 太过分", "complain", 0.4)])[0]
    assert kept.get("intent")["name"] == "complain"


def test_messages_without_a_cue_are_untouched():
    m = guard_near().process([message("帮我订明天的接机", "order_addon", 0.5)])[0]
    assert m.get("intent")["name"] == "order_addon" and m.get("near_domain") is None


def test_every_category_has_a_polite_reply_with_the_human_offer():
    nd = load_near_domain()
    for _cue, category in nd.cues:
        reply = nd.reply(category)
        assert reply.endswith(HUMAN_OFFER) and "转人工" in reply
    assert nd.reply("no_such_category") == nd.reply(None) == nd.default_reply


def test_malformed_near_domain_file_is_refused():
    with pytest.raises(NearDomainError, match="categories"):
        parse_near_domain({"categories": {}})
    with pytest.raises(NearDomainError, match="taxi.reply"):
        parse_near_domain({"categories": {"taxi": {"cues": ["滴滴"]}}})
    with pytest.raises(NearDomainError, match="default_reply"):
        parse_near_domain({"categories": {"taxi": {"cues": ["滴滴"], "reply": "打车软件我帮不上"}}})


# ---- complaint guard ----------------------------------------------------------------------------
def test_complaint_guard_raises_a_complaint_the_classifier_missed():
    m = ComplaintGuard({}).process([message("这价格一点都不值 太失望了", "ask_amenity", 0.7)])[0]
    assert m.get("intent")["name"] == "complain"
    assert m.get("intent")["confidence"] == pytest.approx(0.8)  # the overruled 0.7 + the margin
    ranking = [r["name"] for r in m.get("intent_ranking")]
    assert ranking[0] == "complain" and ranking.count("complain") == 1
    assert m.get("complaint_second_opinion")["raised"] is True
    assert m.get("complaint_second_opinion")["classifier_intent"] == "ask_amenity"


def test_complaint_guard_leaves_praise_and_near_domain_alone():
    praise = ComplaintGuard({}).process([message("房间很干净 服务很好", "praise", 0.6)])[0]
    assert praise.get("intent")["name"] == "praise"
    assert praise.get("complaint_second_opinion")["raised"] is False
    other = message("外卖太差了 我要投诉", "out_of_scope", 0.7)
    other.set("near_domain", "food_delivery")
    assert ComplaintGuard({}).process([other])[0].get("intent")["name"] == "out_of_scope"


def test_intent_triggers_are_not_judged():
    m = ComplaintGuard({}).process([message("/greet", "greet", 1.0)])[0]
    assert m.get("intent")["name"] == "greet" and m.get("complaint_second_opinion") is None


# ---- catalogue entities -------------------------------------------------------------------------
def extractor(tmp_path=None, items=None):
    cfg = CatalogueEntityExtractor.get_default_config()
    if tmp_path is not None:
        path = tmp_path / "items.yml"
        path.write_text(yaml.safe_dump({"items": items}, allow_unicode=True), encoding="utf-8")
        cfg["catalogue_file"] = str(path)
    return CatalogueEntityExtractor(cfg)


def test_catalogue_words_become_canonical_entities_by_intent():
    ex = extractor()
    order = ex.process([message("帮我订个接机，再做个SPA", "order_addon")])[0]
    assert [(e["entity"], e["value"]) for e in order.get("entities")] == [
        ("addon_item", "airport_pickup"),
        ("addon_item", "spa"),
    ]
    question = ex.process([message("游泳池几点开", "ask_amenity")])[0]
    assert [(e["entity"], e["value"]) for e in question.get("entities")] == [("amenity", "pool")]
    chat = ex.process([message("泳池真漂亮", "praise")])[0]
    assert chat.get("entities") == []  # praise is not annotated with amenities


def test_an_overlapping_crf_entity_is_replaced_others_kept():
    crf = [
        {
            "entity": "addon_item",
            "start": 2,
            "end": 4,
            "value": "接机",
            "extractor": "CRFEntityExtractor",
        },
        {
            "entity": "when",
            "start": 0,
            "end": 2,
            "value": "明天",
            "extractor": "CRFEntityExtractor",
        },
    ]
    m = extractor().process([message("明天接机", "order_addon", entities=crf)])[0]
    ents = {(e["entity"], e["value"], e["extractor"]) for e in m.get("entities")}
    assert ents == {
        ("when", "明天", "CRFEntityExtractor"),
        ("addon_item", "airport_pickup", "CatalogueEntityExtractor"),
    }


def test_a_new_catalogue_item_is_recognised_without_retraining(tmp_path):
    ex = extractor(tmp_path, {"spa": {"name": "SPA", "synonyms": ["按摩"]}})
    assert ex.process([message("想坐直升机看海", "order_addon")])[0].get("entities") == []
    path = tmp_path / "items.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "items": {
                    "spa": {"name": "SPA"},
                    "helicopter_tour": {"name": "直升机观光", "synonyms": ["直升机"]},
                }
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    later = time.time() + 5
    os.utime(path, (later, later))  # a new modification time, as an edit gives
    ents = ex.process([message("想坐直升机看海", "order_addon")])[0].get("entities")
    assert [(e["entity"], e["value"]) for e in ents] == [("addon_item", "helicopter_tour")]


def test_a_broken_catalogue_edit_keeps_the_last_good_tables(tmp_path):
    ex = extractor(tmp_path, {"spa": {"name": "SPA"}})
    assert ex.process([message("订个spa", "order_addon")])[0].get("entities")
    path = tmp_path / "items.yml"
    path.write_text("items: [unclosed\n", encoding="utf-8")
    later = time.time() + 5
    os.utime(path, (later, later))
    assert [
        e["value"] for e in ex.process([message("订个spa", "order_addon")])[0].get("entities")
    ] == ["spa"]


# ---- when from JioNLP ----------------------------------------------------------------------------
def when_values(text, entities=None):
    ex = JioNLPWhenExtractor(JioNLPWhenExtractor.get_default_config())
    m = ex.process([message(text, "order_addon", entities=entities)])[0]
    return [(e["value"], e["extractor"]) for e in m.get("entities") if e["entity"] == "when"]


def test_jionlp_adds_a_moment_the_crf_missed_without_its_trailing_modifier():
    assert when_values("下周三下午3点前送我们去机场") == [("下周三下午3点", "JioNLPWhenExtractor")]


def test_jionlp_does_not_duplicate_the_crf_or_count_durations():
    crf = [
        {"entity": "when", "start": 0, "end": 2, "value": "明天", "extractor": "CRFEntityExtractor"}
    ]
    assert when_values("明天接机", entities=crf) == [("明天", "CRFEntityExtractor")]
    assert when_values("等了半小时") == []
    assert when_values("吵得我一晚上没睡") == []


def test_the_e5_vector_cache_can_be_cleared_between_candidates():
    import numpy as np

    from bot.nlu import e5_featurizer

    e5_featurizer._CACHE["你好"] = np.zeros(384, dtype=np.float32)
    e5_featurizer.clear_cache()
    assert "你好" not in e5_featurizer._CACHE


@pytest.mark.parametrize(("top", "expected"), [(0.2, 0.6), (0.7, 0.8), (0.95, 1.0)])
def test_an_overruling_intent_clears_the_fallback_and_leads_the_ranking(top, expected):
    m = message("随便一句话", "greet", top)
    m.set(
        "intent_ranking",
        [{"name": "greet", "confidence": top}, {"name": "complain", "confidence": 0.1}],
    )
    overrule_intent(m, "complain")
    assert m.get("intent") == {"name": "complain", "confidence": pytest.approx(expected)}
    names = [r["name"] for r in m.get("intent_ranking")]
    assert names == ["complain", "greet"]

"""bot.nlu.normalizer: the pure function, the offsets, and the Rasa component in a pipeline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.nlu import normalizer as nz
from bot.nlu.normalizer import map_span, normalize, normalize_with_offsets

ROOT = Path(__file__).resolve().parents[2]
CLASS_PATH = "bot.nlu.normalizer.ChineseNormalizer"


# ----------------------------------------------------------------------------- pure function
def test_traditional_to_simplified_and_full_width_punctuation():
    assert normalize("我們預訂了飯店，請問早餐幾點？") == "我们预订了饭店,请问早餐几点?"


def test_full_width_digits_letters_and_ideographic_space():
    assert normalize("１２月３號\u3000ＷｉＦｉ") == "12月3号 wifi"
    assert normalize("航班ＣＡ１２３４") == "航班ca1234"


def test_latin_is_lower_cased():
    assert normalize("Check In 幾點？SPA") == "check in 几点?spa"


def test_emoji_are_kept_and_separated_by_spaces():
    assert normalize("太棒了👍谢谢😂") == "太棒了 👍 谢谢 😂"
    assert normalize("房间好脏😡😡") == "房间好脏 😡 😡"
    # multi-codepoint emoji stay whole: ZWJ family, skin tone, flag, keycap, variation selector
    for emoji in ("👨\u200d👩\u200d👧", "👍🏻", "🇨🇳", "1\ufe0f\u20e3", "❤\ufe0f"):
        assert normalize(f"好{emoji}好") == f"好 {emoji} 好"
    # WeChat's own emoticon codes are emoji too
    assert normalize("房間好髒[捂臉]") == "房间好脏 [捂脸]"


def test_zero_width_and_invisible_characters_are_removed():
    assert normalize("早\u200b餐\u200d几\ufeff点\u2060") == "早餐几点"
    assert normalize("\u00ad接机") == "接机"


def test_whitespace_is_collapsed_and_stripped():
    assert normalize("  明天   早上\t\n八点 ") == "明天 早上 八点"


def test_empty_and_none():
    assert normalize("") == ""
    assert normalize(None) == ""
    assert normalize("   ") == ""
    assert normalize("\u200b") == ""


def test_intent_trigger_messages_are_left_alone():
    text = '/order_addon{"addon_item": "SPA"}'
    assert normalize(text) == text


def test_idempotent():
    samples = ["我們預訂了飯店，請問早餐幾點？", "１２月３號　ＷｉＦｉ", "太棒了👍谢谢", "…™①  Ａ"]
    for s in samples:
        assert normalize(normalize(s)) == normalize(s)


def test_very_long_text():
    text = ("請問飯店的ＷｉＦｉ密碼是多少？🙏 " * 5000)[:100_000]
    start = time.perf_counter()
    out = normalize(text)
    assert time.perf_counter() - start < 10
    assert "饭店" in out and "wifi" in out and "🙏" in out
    assert "飯" not in out and "Ｗ" not in out


# ----------------------------------------------------------------------------- offsets
def test_length_preserving_for_cjk():
    text = "我們預訂了飯店請問早餐幾點"
    out, sources = normalize_with_offsets(text)
    assert len(out) == len(text) and sources == list(range(len(text)))


def test_offsets_follow_length_changing_steps():
    # "…" -> "...", emoji gets spaces, zero-width char dropped, double space collapsed
    text = "好的…😀 \u200b 請問「早餐」幾點"
    out, sources = normalize_with_offsets(text)
    start = text.index("早餐")
    span = map_span(sources, start, start + 2)
    assert span is not None and out[span[0] : span[1]] == "早餐"
    assert out == "好的... 😀 请问「早餐」几点"


def test_span_that_vanishes_maps_to_none():
    text = "a\u200bb"
    _, sources = normalize_with_offsets(text)
    assert map_span(sources, 1, 2) is None


# ----------------------------------------------------------------------------- the component
@pytest.fixture(scope="module")
def component_class():
    return getattr(nz, "ChineseNormalizer")


def test_registration(component_class):
    from rasa.engine.graph import GraphComponent
    from rasa.engine.recipes.default_recipe import DefaultV1Recipe

    registered = DefaultV1Recipe._from_registry(CLASS_PATH)
    assert registered.clazz is component_class
    assert issubclass(component_class, GraphComponent)
    assert registered.types == {DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER}
    assert registered.is_trainable is False


def test_graph_places_it_before_the_tokenizer(component_class):
    from rasa.engine.recipes.default_recipe import DefaultV1Recipe
    from rasa.engine.validation import validate

    config = {
        "recipe": "default.v1",
        "language": "zh",
        "pipeline": [
            {"name": CLASS_PATH},
            {"name": "JiebaTokenizer"},
            {"name": "CountVectorsFeaturizer"},
            {"name": "LogisticRegressionClassifier"},
        ],
    }
    graph = DefaultV1Recipe().graph_config_for_recipe(config, {})
    validate(graph)  # rasa's own type/needs checks of every node
    train = graph.train_schema.nodes
    node = f"run_{CLASS_PATH}0"
    assert train[node].fn == "process_training_data"
    assert train[node].needs == {"training_data": "nlu_training_data_provider"}
    assert train["run_JiebaTokenizer1"].needs["training_data"] == node
    predict = graph.predict_schema.nodes
    assert predict[node].fn == "process"
    assert predict["run_JiebaTokenizer1"].needs["messages"] == node


def test_converter_is_lazy_and_created_once(component_class):
    from rasa.shared.nlu.training_data.message import Message

    component = component_class({})
    assert component._converter is None
    component.process([Message(data={"text": "飯店"})])
    first = component._converter
    assert first is not None
    component.process([Message(data={"text": "機場"})])
    assert component._converter is first


def test_process_rewrites_text_and_keeps_entities(component_class):
    from rasa.shared.nlu.training_data.message import Message

    text = "😀…請問「早餐」幾點"
    start = text.index("早餐")
    message = Message(
        data={
            "text": text,
            "entities": [
                {"entity": "amenity", "start": start, "end": start + 2, "value": "breakfast"},
                {"entity": "when", "start": text.index("幾點"), "end": len(text), "value": "幾點"},
            ],
        }
    )
    component_class({}).process([message])
    out = message.get("text")
    assert out == "😀 ...请问「早餐」几点"
    amenity, when = message.get("entities")
    assert out[amenity["start"] : amenity["end"]] == "早餐" and amenity["value"] == "breakfast"
    assert out[when["start"] : when["end"]] == "几点" and when["value"] == "几点"


def test_process_training_data_on_the_real_training_data(component_class):
    """Every annotated span of data/nlu is still the same (normalised) text after the component."""
    from rasa.shared.nlu.training_data.loading import load_data

    td = load_data(str(ROOT / "data" / "nlu"))
    before = {
        id(m): [(e, m.get("text")[e["start"] : e["end"]]) for e in (m.get("entities") or [])]
        for m in td.training_examples
    }
    texts = {id(m): m.get("text") for m in td.training_examples}
    component_class({}).process_training_data(td)
    checked = 0
    for m in td.training_examples:
        text = m.get("text")
        assert text == normalize(texts[id(m)])
        for (old, old_span), new in zip(before[id(m)], m.get("entities") or []):
            assert text[new["start"] : new["end"]] == normalize(old_span), (text, old_span)
            if old["value"] == old_span:
                assert new["value"] == normalize(old_span)
            checked += 1
    assert checked > 500
    # synonym keys and lookup entries are normalised too
    assert all(normalize(k) == k for k in td.entity_synonyms)
    assert "澳门" in next(t for t in td.lookup_tables if t["name"] == "destination")["elements"]


def test_inside_a_trained_pipeline(tmp_path, component_class):
    """Train a tiny NLU model with the component first and parse guest-style messages."""
    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    (tmp_path / "config.yml").write_text(
        f"""recipe: default.v1
language: zh
assistant_id: normalizer-test
pipeline:
  - name: {CLASS_PATH}
  - name: JiebaTokenizer
    dictionary_path: {ROOT / "data" / "jieba"}
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 2
  - name: LogisticRegressionClassifier
  - name: CRFEntityExtractor
  - name: EntitySynonymMapper
policies: []
""",
        encoding="utf-8",
    )
    (tmp_path / "nlu.yml").write_text(
        """version: "3.1"
nlu:
- intent: ask_amenity
  examples: |
    - [早餐]{"entity": "amenity", "value": "breakfast"}幾點開始
    - [早饭]{"entity": "amenity", "value": "breakfast"}在哪吃
    - [泳池]{"entity": "amenity", "value": "pool"}开到几点
    - 請問[游泳池]{"entity": "amenity", "value": "pool"}在幾樓
    - [ＷｉＦｉ]{"entity": "amenity", "value": "wifi"}密碼多少
    - [wifi]{"entity": "amenity", "value": "wifi"}怎么连
- intent: greet
  examples: |
    - 你好
    - 您好呀😊
    - 哈囉
    - 嗨
    - 在吗
- synonym: breakfast
  examples: |
    - 早餐
    - 早饭
""",
        encoding="utf-8",
    )
    model = train_nlu(
        str(tmp_path / "config.yml"),
        str(tmp_path / "nlu.yml"),
        str(tmp_path / "models"),
        fixed_model_name="tiny",
    )
    agent = Agent.load(model)

    result = asyncio.run(agent.parse_message("我們預訂了飯店，請問早餐幾點？"))
    assert result["text"] == "我们预订了饭店,请问早餐几点?"
    assert result["intent"]["name"] == "ask_amenity"
    [entity] = [e for e in result["entities"] if e["entity"] == "amenity"]
    assert entity["value"] == "breakfast"
    assert result["text"][entity["start"] : entity["end"]] == "早餐"

    result = asyncio.run(agent.parse_message("ＷｉＦｉ密碼？"))
    assert result["text"] == "wifi密码?"
    assert [e["value"] for e in result["entities"] if e["entity"] == "amenity"] == ["wifi"]

    result = asyncio.run(agent.parse_message("您好👋"))
    assert result["text"] == "您好 👋" and result["intent"]["name"] == "greet"

    result = asyncio.run(agent.parse_message("/greet"))
    assert result["intent"]["name"] == "greet"

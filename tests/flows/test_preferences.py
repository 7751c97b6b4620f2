"""Preference tags: extraction from the vocabulary (pure), and the action writing them to the CRM
(read back from a fresh store), corrections, the pet-policy follow-up, WeCom mirroring."""

from __future__ import annotations

import datetime as dt

import pytest

from actions.preferences import ActionRecordPreferences
from bot.preferences.extractor import PreferenceExtractor
from bot.preferences.mirror import CorpTag, RecordingTagMirror
from bot.preferences.service import PreferenceService
from bot.preferences.vocabulary import VocabularyError, parse_vocabulary

from .helpers import run, tracker


@pytest.fixture(scope="module")
def extractor():
    return PreferenceExtractor()


def tags(extractor, text):
    return [(t.category, t.value, t.retract) for t in extractor.extract(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "我们是来度蜜月的，老公对海鲜过敏，想要高楼层",
            [("purpose", "蜜月", False), ("allergy", "海鲜", False), ("floor", "高楼层", False)],
        ),
        ("带狗狗可以住吗", [("pets", "宠物友好", False)]),
        ("我对花生和芒果过敏", [("allergy", "花生", False), ("allergy", "芒果", False)]),
        ("不是蜜月，是结婚纪念日", [("purpose", "蜜月", True), ("purpose", "纪念日", False)]),
        ("我不吸烟，要无烟房", [("smoking", "无烟房", False)]),
        ("不要高楼层了", [("floor", "高楼层", True)]),
        (
            "喜歡潛水和攝影",
            [("interest", "潜水", False), ("interest", "摄影", False)],
        ),  # traditional
        ("枕头要荞麦枕，预算有限", [("pillow", "荞麦枕", False), ("price", "价格敏感", False)]),
        ("我们不吃香菜和牛肉", [("diet", "不吃香菜", False), ("diet", "不吃牛肉", False)]),
        ("出差，要大床房", [("purpose", "商务", False), ("room_type", "大床房", False)]),
    ],
)
def test_extraction(extractor, text, expected):
    assert tags(extractor, text) == expected


def test_birthday_is_a_calendar_day(extractor):
    assert tags(extractor, "我生日是5月20号") == [("birthday", "05-20", False)]


def test_vague_phrases_carry_lower_confidence(extractor):
    [match] = extractor.extract("这次就是出来旅游")
    assert (match.category, match.value) == ("purpose", "度假") and match.confidence < 0.8


def test_vocabulary_errors_name_the_entry():
    with pytest.raises(VocabularyError, match="tags\\[0\\].*unknown category"):
        parse_vocabulary(
            {"categories": {}, "tags": [{"category": "bed", "value": "x", "synonyms": ["x"]}]}
        )
    with pytest.raises(VocabularyError, match="also means"):
        parse_vocabulary(
            {
                "categories": {"a": {"label": "A", "say": "{value}"}},
                "tags": [
                    {"category": "a", "value": "1", "synonyms": ["同"]},
                    {"category": "a", "value": "2", "synonyms": ["同"]},
                ],
            }
        )


async def test_three_preferences_are_stored_and_confirmed(services, fresh_store):
    text = "我们是来度蜜月的，老公对海鲜过敏，想要高楼层"
    messages, _ = await run(
        ActionRecordPreferences(), tracker("demo-lin", text, "inform_preference")
    )
    assert "蜜月旅行" in messages[0] and "海鲜过敏" in messages[0] and "高楼层" in messages[0]
    assert "加密" in messages[0]  # health data said to be kept safely
    stored = {(t.category, t.value): t for t in fresh_store.tags("demo-lin")}
    assert set(stored) == {("purpose", "蜜月"), ("allergy", "海鲜"), ("floor", "高楼层")}
    for tag in stored.values():
        assert tag.source_message == text and 0.5 < tag.confidence <= 1 and tag.created_at


async def test_saying_it_again_updates_instead_of_duplicating(services, fresh_store):
    for _ in range(2):
        await run(ActionRecordPreferences(), tracker("demo-lin", "要高楼层", "inform_preference"))
    assert len(fresh_store.tags("demo-lin", active_only=False)) == 1


async def test_a_take_back_replaces_the_tag(services, fresh_store):
    await run(ActionRecordPreferences(), tracker("demo-lin", "我们来度蜜月", "inform_preference"))
    messages, _ = await run(
        ActionRecordPreferences(),
        tracker("demo-lin", "不是蜜月，是结婚纪念日", "inform_preference"),
    )
    assert "已更正" in messages[0] and "纪念日" in messages[0]
    active = {(t.category, t.value) for t in fresh_store.tags("demo-lin")}
    assert active == {("purpose", "纪念日")}
    history = {(t.value, t.active) for t in fresh_store.tags("demo-lin", active_only=False)}
    assert ("蜜月", False) in history  # kept for history, no longer in force


async def test_single_valued_category_keeps_the_newest(services, fresh_store):
    await run(ActionRecordPreferences(), tracker("demo-lin", "要高楼层", "inform_preference"))
    await run(ActionRecordPreferences(), tracker("demo-lin", "还是低楼层吧", "inform_preference"))
    assert {t.value for t in fresh_store.tags("demo-lin") if t.category == "floor"} == {"低楼层"}


async def test_a_pet_owner_hears_the_pet_policy(services, fresh_store):
    messages, _ = await run(
        ActionRecordPreferences(), tracker("demo-lin", "带狗狗可以住吗", "inform_preference")
    )
    assert "宠物" in messages[0]
    assert any("10公斤以下" in m for m in messages[1:])  # from the property knowledge base
    assert {(t.category, t.value) for t in fresh_store.tags("demo-lin")} == {("pets", "宠物友好")}


async def test_nothing_recognised_says_so_and_writes_nothing(services, fresh_store):
    messages, _ = await run(
        ActionRecordPreferences(), tracker("demo-lin", "我有个想法", "inform_preference")
    )
    assert "没能" in messages[0]
    assert fresh_store.tags("demo-lin") == []


def test_mirroring_skips_health_data_and_non_wecom_guests(services):
    store = services.store
    store.get_or_create_guest("rest-only")  # not a WeCom contact (demo-lin is one now)
    mirror = RecordingTagMirror()
    service = PreferenceService(store, mirror=mirror)
    service.record("rest-only", "我们是来度蜜月的，老公对海鲜过敏")
    assert mirror.calls == []  # not a WeCom external contact

    store.update_guest("rest-only", wecom_external_userid="wmEXT123")
    service.record("rest-only", "我们是来度蜜月的，老公对海鲜过敏")
    assert mirror.calls == [("wmEXT123", (CorpTag("出行目的", "蜜月"),), ())]
    service.record("rest-only", "不是蜜月，是结婚纪念日")
    assert mirror.calls[-1] == (
        "wmEXT123",
        (CorpTag("出行目的", "纪念日"),),
        (CorpTag("出行目的", "蜜月"),),
    )


def test_a_failing_mirror_does_not_lose_the_tags(services):
    class Broken:
        def sync(self, *args):
            raise RuntimeError("WeCom down")

    services.store.update_guest("demo-lin", wecom_external_userid="wmEXT123")
    PreferenceService(services.store, mirror=Broken()).record("demo-lin", "要无烟房")
    assert [t.value for t in services.store.tags("demo-lin")] == ["无烟房"]


async def test_a_stated_birthday_feeds_the_profile(services, fresh_store):
    """Touchpoints read guests.birthday: the guest's own birthday lands there, a year only if
    said (else the marker year), and someone else's birthday stays a tag."""
    from bot.preferences.service import BIRTHDAY_YEAR_UNKNOWN

    fresh_store.get_or_create_guest("bd-guest")
    messages, _ = await run(
        ActionRecordPreferences(), tracker("bd-guest", "对了，我生日是5月20号", "inform_preference")
    )
    assert "生日" in messages[0]
    assert fresh_store.find_guest("bd-guest").birthday == dt.date(BIRTHDAY_YEAR_UNKNOWN, 5, 20)
    await run(
        ActionRecordPreferences(),
        tracker("bd-guest", "我的生日是1988年11月3日", "inform_preference"),
    )
    assert fresh_store.find_guest("bd-guest").birthday == dt.date(1988, 11, 3)
    await run(
        ActionRecordPreferences(),
        tracker("bd-guest", "老公的生日是7月7号，想给他个惊喜", "inform_preference"),
    )
    assert fresh_store.find_guest("bd-guest").birthday == dt.date(1988, 11, 3)
    assert "07-07" in {t.value for t in fresh_store.tags("bd-guest")}
    # saying only month and day again keeps the year on file
    await run(
        ActionRecordPreferences(), tracker("bd-guest", "我生日在12月1日", "inform_preference")
    )
    assert fresh_store.find_guest("bd-guest").birthday == dt.date(1988, 12, 1)

"""Byte limits and Chinese texts."""

from __future__ import annotations

from bot.wecom.messages import (
    KF_TEXT_MAX_BYTES,
    MAX_INBOUND_CHARS,
    clip_inbound,
    merge_texts,
    reply_for_kind,
    split_utf8,
    strip_mentions,
    truncate_utf8,
    utf8_len,
)


def test_split_never_exceeds_the_byte_limit_nor_cuts_a_character():
    text = "三亚湾的日落非常美丽。" * 400  # 4400 chars, 13200 bytes
    parts = split_utf8(text, KF_TEXT_MAX_BYTES)
    assert len(parts) >= 7
    assert all(utf8_len(p) <= KF_TEXT_MAX_BYTES for p in parts)
    assert "".join(parts) == text  # sentence breaks: nothing lost
    assert all(p.endswith("。") for p in parts)


def test_split_prefers_paragraphs():
    text = ("第一段" * 200) + "\n\n" + ("第二段" * 200)
    parts = split_utf8(text, KF_TEXT_MAX_BYTES)
    assert parts == ["第一段" * 200, "第二段" * 200]


def test_split_without_any_break_cuts_at_character_boundary():
    text = "字" * 1000
    parts = split_utf8(text, 2048)
    assert [utf8_len(p) for p in parts] == [2046, 954]
    assert "".join(parts) == text


def test_short_and_empty_texts():
    assert split_utf8("你好", 2048) == ["你好"]
    assert split_utf8("", 2048) == [""]


def test_merge_joins_short_texts_within_the_limit():
    assert merge_texts(["你好", "请问有什么可以帮您？"], 2048) == ["你好\n\n请问有什么可以帮您？"]
    long = "长" * 600  # 1800 bytes
    assert merge_texts([long, long], 2048) == [long, long]


def test_truncate_utf8():
    assert truncate_utf8("标题" * 100, 128).endswith("…")
    assert utf8_len(truncate_utf8("标题" * 100, 128)) <= 128
    assert truncate_utf8("短标题", 128) == "短标题"


def test_strip_mentions():
    assert strip_mentions("@礼宾助手 明天天气", "礼宾助手") == ("明天天气", True)
    assert strip_mentions("明天天气 @礼宾助手", "礼宾助手") == ("明天天气", True)
    assert strip_mentions("明天天气", "礼宾助手") == ("明天天气", False)
    assert strip_mentions("@Robot hello", None) == ("hello", True)


def test_clip_inbound():
    assert clip_inbound("  你好 ") == ("你好", False)
    text, cut = clip_inbound("啊" * (MAX_INBOUND_CHARS + 50))
    assert cut and len(text) == MAX_INBOUND_CHARS


def test_non_text_replies_are_chinese_and_specific():
    assert "图片" in reply_for_kind("image")
    assert "语音" in reply_for_kind("voice")
    assert "广州" in reply_for_kind("location", {"location_name": "广州国际媒体港"})
    assert "文字" in reply_for_kind("business_card")
    assert "文字" in reply_for_kind("something_new")

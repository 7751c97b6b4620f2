"""Advisors' Chinese command grammar, including how people really type and plain garbage."""

from __future__ import annotations

import pytest

from bot.paging.commands import (
    ACK,
    CONFIRM,
    DECLINE,
    HANDBACK,
    HELP,
    HELP_TEXT,
    NOTE,
    QUEUE,
    REPLY,
    RESOLVE,
    TAKEOVER,
    Command,
    CommandError,
    parse,
)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("接单 12", Command(ACK, 12)),
        ("接单12", Command(ACK, 12)),
        ("接单 #12", Command(ACK, 12)),
        ("接单 12号", Command(ACK, 12)),
        ("接單 １２", Command(ACK, 12)),  # traditional + full-width digits
        ("  接单　　12  ", Command(ACK, 12)),  # ideographic spaces
        ("/接单 12", Command(ACK, 12)),
        ("@礼宾助手 接单 12", Command(ACK, 12)),
        ("接单", Command(ACK, None)),
        ("ACK 7", Command(ACK, 7)),
        ("接管 3", Command(TAKEOVER, 3)),
        ("接管 林晓", Command(TAKEOVER, guest="林晓")),
        ("接管", Command(TAKEOVER)),
        ("备注 12 客人要求换到高楼层", Command(NOTE, 12, text="客人要求换到高楼层")),
        ("備註12：已致電客人", Command(NOTE, 12, text="已致電客人")),
        ("备注 12, 明早复查", Command(NOTE, 12, text="明早复查")),
        (
            "解决 12 已更换房间并致歉，赠送下午茶",
            Command(RESOLVE, 12, text="已更换房间并致歉，赠送下午茶"),
        ),
        ("解決 ＃12 已處理", Command(RESOLVE, 12, text="已處理")),
        ("已解决 5 退还房费差价", Command(RESOLVE, 5, text="退还房费差价")),
        ("结案 5 完成", Command(RESOLVE, 5, text="完成")),
        ("回复 12 您好，我马上到", Command(REPLY, 12, text="您好，我马上到")),
        ("交还 12", Command(HANDBACK, 12)),
        ("交還", Command(HANDBACK)),
        ("队列", Command(QUEUE)),
        ("隊列", Command(QUEUE)),
        ("我的队列", Command(QUEUE)),
        ("帮助", Command(HELP)),
        ("幫助", Command(HELP)),
        ("help", Command(HELP)),
        ("？", Command(HELP)),
        ("?", Command(HELP)),
    ],
)
def test_parse(text, expected):
    assert parse(text) == expected


def test_number_with_text_glued_is_not_a_case_number():
    # "解决 12楼..." -> the number must end at a separator: 12楼 is not case 12
    with pytest.raises(CommandError, match="编号"):
        parse("解决 12楼已处理")


@pytest.mark.parametrize(
    "text,hint",
    [
        ("", "空消息"),
        ("   ", "空消息"),
        ("你好", "没看懂"),
        ("asdfgh", "没看懂"),
        ("🙂🙂🙂", "没看懂"),
        ("acknowledge 12", "没看懂"),
        ("接单 abc", "不是编号"),
        ("接单 0", "编号 0 不对"),
        ("接单 99999999999", "不对"),
        ("备注", "请写上编号"),
        ("备注 12", "请写上备注内容"),
        ("解决 12", "请写上处理说明"),
        ("解决 已经好了", "请写上编号"),
        ("回复 12", "请写上回复内容"),
        ("交还 全部", "不是编号"),
        ("x" * 5000, "没看懂"),
    ],
)
def test_garbage_gets_a_chinese_hint(text, hint):
    with pytest.raises(CommandError) as info:
        parse(text)
    assert hint in info.value.reply
    assert len(info.value.reply) < 200


def test_overlong_note_is_refused():
    with pytest.raises(CommandError, match="太长"):
        parse("备注 1 " + "很" * 1001)


def test_help_text_lists_every_command():
    for word in ("接单 N", "接管 N", "备注 N", "解决 N", "交还 N", "队列", "帮助", "回复 N"):
        assert word in HELP_TEXT


def test_none_and_control_characters_do_not_crash():
    with pytest.raises(CommandError):
        parse(None)  # type: ignore[arg-type]
    with pytest.raises(CommandError):
        parse("\x00\x01\x02")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("确认 12", Command(CONFIRM, 12)),
        ("確認１２ 司機王師傅", Command(CONFIRM, 12, text="司機王師傅")),
        ("供应商确认 #12，明早7:40在大堂等", Command(CONFIRM, 12, text="明早7:40在大堂等")),
        ("婉拒 12 当天船已订满", Command(DECLINE, 12, text="当天船已订满")),
        ("无法安排12：台风停航", Command(DECLINE, 12, text="台风停航")),
    ],
)
def test_supplier_answers(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text,hint",
    [
        ("确认", "请写上编号"),
        ("婉拒 12", "原因"),
        ("婉拒", "编号"),
    ],
)
def test_supplier_answers_need_a_case_and_a_reason(text, hint):
    with pytest.raises(CommandError) as err:
        parse(text)
    assert hint in err.value.reply

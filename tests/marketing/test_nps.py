import pytest

from bot.marketing.nps import band, parse_nps


@pytest.mark.parametrize(
    "text, score",
    [
        ("9分", 9),
        ("还行吧 7", 7),
        ("很差", 2),
        ("10", 10),
        ("０分", 0),
        ("８", 8),
        ("八分", 8),
        ("给8吧", 8),
        ("十分满意", 10),
        ("非常满意！", 10),
        ("满意", 9),
        ("不太满意", 2),
        ("一般般", 6),
        ("还行", 6),
        ("满分10分给9分", 9),
        ("10分制的话 8", 8),
        ("太差了，再也不来了", 2),
        ("5星", 5),
    ],
)
def test_scores_from_natural_replies(text, score):
    assert parse_nps(text) == score


@pytest.mark.parametrize(
    "text",
    [
        "",
        "你好",
        "明天几点退房",
        "我们3个人10点到",
        "7到8分吧",
        "11分",
        "100",
        "房间号1203",
        "我想问一下早餐是几点开始，还有泳池开到几点，另外能不能帮我订明天晚上的餐厅谢谢" * 2,
    ],
)
def test_what_is_not_a_score_is_left_to_the_bot(text):
    assert parse_nps(text) is None


def test_bands():
    assert [band(s) for s in (0, 6, 7, 8, 9, 10)] == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
    ]

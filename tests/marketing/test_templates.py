from __future__ import annotations

import datetime as dt

import pytest

from bot.marketing.facts import GuestFacts, Stay
from bot.marketing.templates import TemplateRejected, check_template, render


@pytest.mark.parametrize(
    "source, line, words",
    [
        ("你好\n{{ nmae }}", 2, "unknown variable 'nmae'"),
        ("{{ name.__class__.__mro__ }}", 1, "unsafe"),
        ("{{ tags.append('x') }}", 1, "unsafe"),
        ("{{ ''.__class__.__base__.__subclasses__() }}", 1, "unsafe"),
        ("a\nb\n{% if name %}", 3, "end of template"),
        ("第一行\n\n{{ next_stay.city }}", 3, "guard optional values"),
        ("{{ next_stay.hotel if next_stay }}", 1, "has no attribute 'hotel'"),
        ("x\n{{ name|shout }}", 2, "No filter named 'shout'"),
        ("{{ config }}", 1, "unknown variable 'config'"),
        ("{{ cycler.__init__.__globals__ }}", 1, "unknown variable 'cycler'"),
        ("   ", None, "empty"),
        ("{% for i in range(100000) %}会员日{% endfor %}", None, "4000 bytes"),
    ],
)
def test_bad_templates_are_refused_at_creation_with_the_line(source, line, words):
    with pytest.raises(TemplateRejected) as info:
        check_template(source)
    assert info.value.line == line
    assert words in str(info.value)


def test_a_good_template_renders_each_guests_own_values():
    template = check_template(
        "{{ name }}您好，{{ tier }}会员积分{{ points }}。"
        "{% if next_stay %}{{ next_stay.check_in|cn_date }}见{% else %}欢迎再来{% endif %}"
    )
    facts = GuestFacts(
        id=1,
        sender_id="a",
        name="林晓",
        tier="金卡",
        points=12800,
        birthday=None,
        owner_userid=None,
        external_userid=None,
        kf_external_userid=None,
        kf_open_kfid=None,
        is_demo=False,
    )
    assert render(template, facts, dt.date(2026, 12, 1)) == "林晓您好，金卡会员积分12800。欢迎再来"
    facts.upcoming.append(
        Stay(1, "p", "三亚", dt.date(2026, 12, 7), dt.date(2026, 12, 9), "booked", None)
    )
    facts.name = None
    assert render(template, facts, dt.date(2026, 12, 1)) == "您您好，金卡会员积分12800。12月7日见"

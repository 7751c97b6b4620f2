"""Marketers' templates: Jinja2 in a sandbox, checked when a campaign is created, never at send.

Marketers write these, so they run in `jinja2.sandbox.ImmutableSandboxedEnvironment` (no
`__class__`/`__globals__` walks, no mutating calls) with `StrictUndefined`. `check_template`
refuses, with the line number: a syntax error; a variable that is not in `VARIABLES`; an
attribute that does not exist on one (rendered against two sample guests, one with everything
filled, one with nothing, so `{{ next_stay.city }}` without an `if next_stay` is caught too);
anything the sandbox forbids.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Optional

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bot.marketing.facts import GuestFacts

MAX_TEXT_BYTES = 4000  # WeCom's text.content limit for add_msg_template
VARIABLES = {
    "name": "the guest's name (or 您 when unknown)",
    "tier": "membership tier (普通/银卡/金卡/铂金/钻石)",
    "points": "loyalty points",
    "next_stay": "the next stay: .property .city .check_in .check_out .nights (or none)",
    "last_stay": "the last stay, same fields (or none)",
    "tags": "the guest's preference tags (list of values)",
    "stays": "number of stays so far",
    "today": "today's date in China",
}


class TemplateRejected(ValueError):
    def __init__(self, message: str, line: Optional[int] = None):
        super().__init__(f"template line {line}: {message}" if line else f"template: {message}")
        self.line = line


@dataclass(frozen=True)
class StayView:
    property: str
    city: Optional[str]
    check_in: dt.date
    check_out: dt.date

    @property
    def nights(self) -> int:
        return (self.check_out - self.check_in).days


def _cn_date(value: Any) -> str:
    return f"{value.month}月{value.day}日" if isinstance(value, dt.date) else str(value)


def make_environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
    )
    env.filters["cn_date"] = _cn_date
    # Only our variables: no lipsum/cycler/joiner/namespace/dict to poke at (range stays, capped
    # by the sandbox at MAX_RANGE items).
    env.globals = {"range": env.globals["range"]}
    return env


def context_for(f: GuestFacts, today: dt.date) -> dict:
    def view(stay) -> Optional[StayView]:
        return (
            StayView(stay.property_id, stay.city, stay.check_in, stay.check_out) if stay else None
        )

    return {
        "name": f.name or "您",
        "tier": f.tier,
        "points": f.points,
        "next_stay": view(f.next_stay),
        "last_stay": view(f.last_stay),
        "tags": sorted(v for c, v in f.tag_pairs),
        "stays": len(f.stays),
        "today": today,
    }


def _samples(today: dt.date) -> list[dict]:
    full = {
        "name": "林晓",
        "tier": "金卡",
        "points": 1200,
        "next_stay": StayView("sanya-haitang-resort", "三亚", today, today + dt.timedelta(3)),
        "last_stay": StayView(
            "shanghai-bund-hotel", "上海", today - dt.timedelta(90), today - dt.timedelta(88)
        ),
        "tags": ["潜水", "海景房"],
        "stays": 3,
        "today": today,
    }
    empty = {
        "name": "您",
        "tier": "普通",
        "points": 0,
        "next_stay": None,
        "last_stay": None,
        "tags": [],
        "stays": 0,
        "today": today,
    }
    return [full, empty]


def _line_of(exc: BaseException, source: str) -> Optional[int]:
    tb = exc.__traceback__
    line = None
    while tb is not None:  # the template's own frame carries its line number
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _find_line(source: str, word: str) -> Optional[int]:
    pattern = re.compile(r"\b" + re.escape(word) + r"\b")
    for number, text in enumerate(source.splitlines(), 1):
        if ("{{" in text or "{%" in text) and pattern.search(text):
            return number
    return None


def check_template(source: str, env: Optional[ImmutableSandboxedEnvironment] = None):
    """The compiled template, or `TemplateRejected` saying what is wrong and on which line."""
    if not isinstance(source, str) or not source.strip():
        raise TemplateRejected("the template is empty")
    env = env or make_environment()
    try:
        ast = env.parse(source)
        declared = meta.find_undeclared_variables(ast)  # compiles: unknown filters fail here
    except TemplateSyntaxError as exc:
        raise TemplateRejected(exc.message or "syntax error", exc.lineno) from None
    unknown = sorted(declared - set(VARIABLES))
    if unknown:
        raise TemplateRejected(
            f"unknown variable {unknown[0]!r}; available: " f"{', '.join(VARIABLES)}",
            _find_line(source, unknown[0]),
        )
    template = env.from_string(source)
    for sample in _samples(dt.date(2026, 5, 20)):
        try:
            text = template.render(sample)
        except SecurityError as exc:
            raise TemplateRejected(f"not allowed: {exc}", _line_of(exc, source)) from None
        except UndefinedError as exc:
            raise TemplateRejected(
                f"{exc.message} (guard optional values with " f"{{% if ... %}})",
                _line_of(exc, source),
            ) from None
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise TemplateRejected(f"{type(exc).__name__}: {exc}", _line_of(exc, source)) from None
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise TemplateRejected(f"renders to more than {MAX_TEXT_BYTES} bytes (WeCom's limit)")
    return template


def render(template, f: GuestFacts, today: dt.date) -> str:
    return template.render(context_for(f, today)).strip()

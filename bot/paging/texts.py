"""The Chinese the paging store writes on a case (its summary, why it was cancelled): Jinja2
templates in bot/templates/paging, so the store handles data and the words live with the other
texts."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Mapping

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.core.time import CHINA_TZ, aware
from bot.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "bot" / "templates" / "paging"


def _china_time(value: dt.datetime) -> str:
    stamp = aware(value)
    assert stamp is not None
    return stamp.astimezone(CHINA_TZ).strftime("%m-%d %H:%M")


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, autoescape=False
    )
    env.filters["china_time"] = _china_time
    return env


def render(name: str, /, **context: Any) -> str:
    return _environment().get_template(f"{name}.j2").render(**context).strip()


def case_summary(subject_type: str, details: Mapping[str, Any]) -> str:
    """What the case is about, in one line (stored on the clock when it starts)."""
    return render("summary", subject_type=subject_type, s=dict(details))


def gone_reason(subject_type: str) -> str:
    return render("gone", subject_type=subject_type)

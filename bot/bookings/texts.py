"""The guest- and staff-facing texts of bookings and identity linking: Jinja2 templates in
bot/templates/bookings, rendered like the pre-trip answers (blank lines dropped)."""

from __future__ import annotations

import functools

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.knowledge.answers import TEMPLATE_DIR, cn_date

TEMPLATES = TEMPLATE_DIR.parent / "bookings"


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        autoescape=False,
        lstrip_blocks=True,
    )
    env.filters["cn_date"] = cn_date
    return env


def render(name: str, /, **context) -> str:
    text = _environment().get_template(f"{name}.j2").render(**context)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())

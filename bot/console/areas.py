"""Where each area's routes are added (advisor, reports, marketing, admin)."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    from bot.console import marketing

    marketing.add_routes(app)

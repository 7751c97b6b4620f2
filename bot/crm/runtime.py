"""Which environment the process runs in, read from CONCIERGE_ENV at call time.

Kept apart from `bot.settings` so the CRM's safety checks (no development encryption key, no demo
data in production) read the variable the moment they need it.
"""
from __future__ import annotations

import os


def concierge_env() -> str:
    """`development` unless CONCIERGE_ENV says otherwise (lower-cased)."""
    return (os.environ.get("CONCIERGE_ENV") or "development").strip().lower()


def is_production() -> bool:
    return concierge_env() in ("production", "prod")

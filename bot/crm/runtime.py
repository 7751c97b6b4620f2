"""Which environment the process runs in, read from CONCIERGE_ENV at call time.

Not the cached `get_settings()`: the CRM's safety checks (no development encryption key, no demo
data in production) read the variable the moment they need it (bot.core.settings.current_env).
"""

from __future__ import annotations

from bot.core.settings import current_env


def concierge_env() -> str:
    """`development` unless CONCIERGE_ENV says otherwise (lower-cased)."""
    return current_env()


def is_production() -> bool:
    return concierge_env() in ("production", "prod")

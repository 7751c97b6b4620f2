"""Compatibility name for `bot.core.data.read_yaml` (the one data-file loader); new code imports
`bot.core.data`."""

from bot.core.data import read_yaml  # noqa: F401 - re-exported

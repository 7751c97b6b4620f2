"""The foundation every other package stands on: time, errors, settings, the database base and
sessions, and the one data-file loader.

Nothing here imports another part of the project (an import-linter contract in pyproject.toml
checks it), so any module may import `bot.core` without pulling in a feature.
"""

"""A feature registering its own secret and check with bot.preflight (used by test_preflight)."""

from bot.preflight import Secret

PREFLIGHT_SECRETS = [
    Secret("CONSOLE_SESSION_SECRET", "the console's session secret", lambda settings: None)
]


def preflight_checks(settings):
    return ["the plugin's own check failed"]

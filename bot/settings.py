"""Compatibility name for `bot.core.settings`, which reads every environment variable (about a
hundred modules import `bot.settings`; new code imports `bot.core.settings`)."""

from bot.core.settings import (  # noqa: F401 - re-exported
    DEV_PAGING_LINK_SECRET,
    EventBrokerSettings,
    PROJECT_ROOT,
    RELAXED_ENVS,
    STRICT_ENVS,
    IntakeSettings,
    SandboxSettings,
    Settings,
    TrainingSettings,
    current_env,
    load_event_broker_settings,
    get_settings,
    load_sandbox_settings,
    load_settings,
    load_training_settings,
)

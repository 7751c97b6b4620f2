"""Which secrets each WeCom surface uses: credentials.yml entries, else WECOM_* env (bot.settings),
else the public dev defaults -- the last only while the API base is this machine (the sandbox), so
a production deployment with a missing secret fails closed instead of accepting forged callbacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Optional
from urllib.parse import urlparse

from bot.settings import get_settings
from bot.wecom import dev_defaults

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
SURFACES = ("kf", "aibot", "app")


def is_local_api(api_base: str) -> bool:
    host = (urlparse(api_base).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


@dataclass(frozen=True)
class SurfaceConfig:
    """Callback verification material of one surface (kf, aibot or app)."""

    name: str
    token: Optional[str]
    aes_key: Optional[str]
    receive_id: str  # corp id for kf/app, "" for the 智能机器人 (per WeCom's docs)

    @property
    def enabled(self) -> bool:
        return bool(self.token and self.aes_key)


@dataclass(frozen=True)
class WeComConfig:
    api_base: str
    corp_id: str
    kf: SurfaceConfig
    aibot: SurfaceConfig
    app: SurfaceConfig
    kf_secret: Optional[str]
    app_secret: Optional[str]
    app_agent_id: Optional[str]
    using_dev_defaults: bool = False
    max_clock_skew_s: Optional[float] = 300.0
    welcome_intent: Optional[str] = "greet"  # enter_session -> "/greet"; "" for a fixed greeting
    aibot_name: str = dev_defaults.SANDBOX_AIBOT_NAME
    extra: Dict[str, Any] = field(default_factory=dict)

    def surface(self, name: str) -> SurfaceConfig:
        return {"kf": self.kf, "aibot": self.aibot, "app": self.app}[name]

    @classmethod
    def load(cls, credentials: Optional[Dict[str, Any]] = None) -> "WeComConfig":
        creds = {k: v for k, v in (credentials or {}).items() if v not in (None, "")}
        settings = get_settings()
        api_base = str(creds.get("api_base") or settings.wecom_api_base).rstrip("/")
        # The public dev secrets only for the local sandbox, and never when CONCIERGE_ENV says
        # production (bot.preflight refuses that start anyway: this is the second line).
        use_dev = is_local_api(api_base) and not settings.strict

        def pick(cred_key: str, env_name: str) -> Optional[str]:
            value = creds.get(cred_key) or settings.wecom.get(env_name)
            if value in (None, "") and use_dev:
                value = dev_defaults.ENV_DEFAULTS.get(f"WECOM_{env_name}")
            return str(value) if value not in (None, "") else None

        corp_id = str(creds.get("corp_id") or settings.wecom_corp_id)
        skew = creds.get("max_clock_skew_s", 300)
        cfg = cls(
            api_base=api_base,
            corp_id=corp_id,
            kf=SurfaceConfig(
                "kf", pick("kf_token", "KF_TOKEN"), pick("kf_aes_key", "KF_AES_KEY"), corp_id
            ),
            aibot=SurfaceConfig(
                "aibot",
                pick("aibot_token", "AIBOT_TOKEN"),
                pick("aibot_aes_key", "AIBOT_AES_KEY"),
                "",
            ),
            app=SurfaceConfig(
                "app", pick("app_token", "APP_TOKEN"), pick("app_aes_key", "APP_AES_KEY"), corp_id
            ),
            kf_secret=pick("kf_secret", "KF_SECRET"),
            app_secret=pick("app_secret", "APP_SECRET"),
            app_agent_id=pick("app_agent_id", "APP_AGENT_ID"),
            using_dev_defaults=use_dev,
            max_clock_skew_s=None if skew in ("none", "off", None) else float(skew),
            welcome_intent=(credentials or {}).get("welcome_intent", "greet") or None,
            aibot_name=str(creds.get("aibot_name") or dev_defaults.SANDBOX_AIBOT_NAME),
            extra=creds,
        )
        for surface in (cfg.kf, cfg.aibot, cfg.app):
            if not surface.enabled:
                logger.warning(
                    "WeCom %s surface has no token/AES key: its callbacks are refused", surface.name
                )
        return cfg

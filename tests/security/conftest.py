"""A complete production configuration (every secret fresh, real stores, an https policy)."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]


def aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()[:43]


def production_policy(path: Path) -> Path:
    text = (ROOT / "data" / "sla_policy.yml").read_text(encoding="utf-8")
    text = text.replace(
        "http://localhost:5005/webhooks/paging/cases/",
        "https://concierge.example-hotel.cn/webhooks/paging/cases/",
    )
    text = text.replace(
        "http://127.0.0.1:8800/cgi-bin/webhook/send?key=sandbox-robot-key",
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=real-robot-key",
    )
    path.write_text(text, encoding="utf-8")
    return path


def production_env(tmp_path: Path) -> dict:
    token = lambda: secrets.token_urlsafe(32)  # noqa: E731
    return {
        "CONCIERGE_ENV": "production",
        "DATABASE_URL": "postgresql+psycopg2://concierge@127.0.0.1:5432/concierge",
        "TRACKER_DATABASE_URL": "postgresql+psycopg2://rasa@127.0.0.1:5432/rasa",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "CRM_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "CRM_INDEX_KEY": token(),
        "RASA_AUTH_TOKEN": token(),
        "PAGING_LINK_SECRET": token(),
        "WECOM_INBOX_TOKEN": token(),
        "WECOM_API_BASE": "https://qyapi.weixin.qq.com",
        "WECOM_CORP_ID": "ww" + secrets.token_hex(8),
        "WECOM_KF_TOKEN": token()[:32],
        "WECOM_KF_AES_KEY": aes_key(),
        "WECOM_KF_SECRET": token(),
        "WECOM_AIBOT_TOKEN": token()[:32],
        "WECOM_AIBOT_AES_KEY": aes_key(),
        "WECOM_APP_TOKEN": token()[:32],
        "WECOM_APP_AES_KEY": aes_key(),
        "WECOM_APP_SECRET": token(),
        "WECOM_APP_AGENT_ID": "1000002",
        "WEATHER_PROVIDER": "qweather",
        "QWEATHER_KEY": token(),
        "SLA_POLICY_FILE": str(production_policy(tmp_path / "sla_policy.yml")),
        # The staff console (bot/console/auth.py registers these checks).
        "CONSOLE_SECRET": token(),
        "CONSOLE_BASE_URL": "https://console.example-hotel.cn",
        "WECOM_OAUTH_BASE": "https://open.weixin.qq.com",
    }


# Every variable preflight reads: cleared so a developer's shell cannot leak into a test.
PREFLIGHT_VARS = (
    "CONCIERGE_ENV",
    "DATABASE_URL",
    "TRACKER_DATABASE_URL",
    "REDIS_URL",
    "CRM_ENCRYPTION_KEY",
    "CRM_INDEX_KEY",
    "RASA_AUTH_TOKEN",
    "PAGING_LINK_SECRET",
    "WECOM_INBOX_TOKEN",
    "WECOM_API_BASE",
    "WECOM_CORP_ID",
    "WECOM_KF_TOKEN",
    "WECOM_KF_AES_KEY",
    "WECOM_KF_SECRET",
    "WECOM_AIBOT_TOKEN",
    "WECOM_AIBOT_AES_KEY",
    "WECOM_APP_TOKEN",
    "WECOM_APP_AES_KEY",
    "WECOM_APP_SECRET",
    "WECOM_APP_AGENT_ID",
    "WEATHER_PROVIDER",
    "QWEATHER_KEY",
    "SLA_POLICY_FILE",
    "CONSOLE_SECRET",
    "CONSOLE_BASE_URL",
    "WECOM_OAUTH_BASE",
)


@pytest.fixture
def bare_env(monkeypatch):
    """Nothing configured at all."""
    for name in PREFLIGHT_VARS:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def prod_env(bare_env, tmp_path):
    """A complete production configuration in the environment; returns it as a dict."""
    env = production_env(tmp_path)
    for name, value in env.items():
        bare_env.setenv(name, value)
    get_settings.cache_clear()
    return env

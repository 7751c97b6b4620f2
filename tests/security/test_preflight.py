"""bot.preflight and `concierge preflight`: production fails closed, development does not."""

from __future__ import annotations

import json

import pytest

from bot.cli import main
from bot.crm.crypto import DEVELOPMENT_KEY
from bot.preflight import PreflightFailed, enforce, run_checks
from bot.settings import get_settings
from bot.wecom import dev_defaults

SECRETS = (
    "CRM_ENCRYPTION_KEY",
    "CRM_INDEX_KEY",
    "RASA_AUTH_TOKEN",
    "PAGING_LINK_SECRET",
    "WECOM_INBOX_TOKEN",
    "WECOM_KF_TOKEN",
    "WECOM_KF_AES_KEY",
    "WECOM_KF_SECRET",
    "WECOM_AIBOT_TOKEN",
    "WECOM_AIBOT_AES_KEY",
    "WECOM_APP_TOKEN",
    "WECOM_APP_AES_KEY",
    "WECOM_APP_SECRET",
    "WECOM_APP_AGENT_ID",
)


def names(problems):
    return {p.name for p in problems}


def test_production_with_nothing_configured_names_every_missing_secret(bare_env, capsys):
    bare_env.setenv("CONCIERGE_ENV", "production")
    assert main(["preflight"]) == 2
    err = capsys.readouterr().err
    for name in (
        *SECRETS,
        "WECOM_CORP_ID",
        "DATABASE_URL",
        "TRACKER_DATABASE_URL",
        "REDIS_URL",
        "WEATHER_PROVIDER",
        "SLA_POLICY_FILE",
    ):
        assert f"  - {name}: " in err, name


def test_unset_env_is_production(bare_env, capsys):
    assert main(["preflight"]) == 2
    assert "CONCIERGE_ENV: not set" in capsys.readouterr().err


def test_complete_production_configuration_passes(prod_env, capsys):
    assert main(["preflight"]) == 0
    assert "preflight: ok" in capsys.readouterr().err
    assert enforce("rasa") == []


def test_json_output(prod_env, bare_env, capsys):
    bare_env.delenv("RASA_AUTH_TOKEN")
    get_settings.cache_clear()
    assert main(["preflight", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["strict"] is True
    assert [p["name"] for p in report["problems"]] == ["RASA_AUTH_TOKEN"]


@pytest.mark.parametrize(
    "name,value,words",
    [
        ("RASA_AUTH_TOKEN", "dev-only-token", "published default"),
        ("RASA_AUTH_TOKEN", "short-token", "too short"),
        ("PAGING_LINK_SECRET", "dev-only", "published default"),
        ("CRM_ENCRYPTION_KEY", DEVELOPMENT_KEY, "development key"),
        ("CRM_ENCRYPTION_KEY", "x" * 44, "not a Fernet key"),
        ("WECOM_KF_AES_KEY", dev_defaults.KF_AES_KEY, "published default"),
        ("WECOM_APP_SECRET", dev_defaults.APP_SECRET, "published default"),
        ("WECOM_CORP_ID", dev_defaults.CORP_ID, "published default"),
        ("WECOM_AIBOT_AES_KEY", "A" * 42 + "!", "EncodingAESKey"),
        ("WECOM_APP_AGENT_ID", "agent-one", "a number"),
        ("WECOM_API_BASE", dev_defaults.SANDBOX_API_BASE, "sandbox"),
        ("WECOM_API_BASE", "http://qyapi.weixin.qq.com", "not https"),
        ("DATABASE_URL", "sqlite:///var/concierge.db", "SQLite"),
        ("TRACKER_DATABASE_URL", "sqlite:///var/rasa_tracker.db", "PostgreSQL"),
        ("WEATHER_PROVIDER", "demo", "invents"),
        ("CONCIERGE_ENV", "prodution", "unknown value"),
    ],
)
def test_each_weak_or_default_value_is_refused(prod_env, bare_env, name, value, words):
    bare_env.setenv(name, value)
    get_settings.cache_clear()
    with pytest.raises(PreflightFailed) as refused:
        enforce("rasa")
    assert [p.name for p in refused.value.problems] == [name]
    assert words in str(refused.value)


def test_missing_redis_and_case_secret_equal_to_rasa_token(prod_env, bare_env):
    bare_env.delenv("REDIS_URL")
    bare_env.setenv("PAGING_LINK_SECRET", prod_env["RASA_AUTH_TOKEN"])
    get_settings.cache_clear()
    assert names(run_checks()) == {"REDIS_URL", "PAGING_LINK_SECRET"}


def test_policy_pointing_at_this_machine_is_refused(prod_env, bare_env, tmp_path):
    from tests.security.conftest import ROOT

    bare_env.setenv("SLA_POLICY_FILE", str(ROOT / "data" / "sla_policy.yml"))
    get_settings.cache_clear()
    problems = [str(p) for p in run_checks()]
    assert any("must be an https URL" in p for p in problems)
    assert any("emergency group webhook points at this machine" in p for p in problems)


def test_development_tolerates_and_warns(bare_env, capsys, caplog):
    bare_env.setenv("CONCIERGE_ENV", "development")
    get_settings.cache_clear()
    assert main(["preflight"]) == 0
    assert "production would refuse" in capsys.readouterr().err
    problems = enforce("rasa")
    assert "RASA_AUTH_TOKEN" in names(problems)
    assert "preflight problem(s) are tolerated" in caplog.text
    assert main(["preflight", "--strict"]) == 2


def test_registered_module_secrets_and_checks(prod_env):
    problems = run_checks(modules=["tests.security.preflight_plugin"])
    assert [str(p) for p in problems] == [
        "CONSOLE_SESSION_SECRET: missing (the console's session secret); generate one with: "
        'python -c "import secrets; print(secrets.token_urlsafe(32))"',
        "tests.security.preflight_plugin: the plugin's own check failed",
    ]


def test_wecom_config_never_uses_dev_secrets_in_production(bare_env):
    from bot.wecom.config import WeComConfig

    bare_env.setenv("WECOM_API_BASE", dev_defaults.SANDBOX_API_BASE)
    bare_env.setenv("CONCIERGE_ENV", "development")
    get_settings.cache_clear()
    assert WeComConfig.load().kf.token == dev_defaults.KF_TOKEN
    bare_env.setenv("CONCIERGE_ENV", "production")
    get_settings.cache_clear()
    config = WeComConfig.load()
    assert config.kf.token is None and not config.kf.enabled and config.app_secret is None

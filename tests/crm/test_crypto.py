"""Key handling for the encrypted columns."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet

from bot.crm import crypto
from bot.crm.db import upgrade
from bot.crm.store import CRMStore
from bot.settings import get_settings


def _use_key(monkeypatch, key: str | None) -> None:
    if key is None:
        monkeypatch.delenv("CRM_ENCRYPTION_KEY", raising=False)
    else:
        monkeypatch.setenv("CRM_ENCRYPTION_KEY", key)
    get_settings.cache_clear()
    crypto.reset_for_tests()


def test_round_trip_with_configured_key(crm_key):
    token = crypto.encrypt("13812345678")
    assert token != "13812345678"
    assert Fernet(crm_key).decrypt(token.encode()).decode() == "13812345678"
    assert crypto.decrypt(token) == "13812345678"


def test_development_key_warns_once(monkeypatch, caplog):
    _use_key(monkeypatch, None)
    with caplog.at_level(logging.WARNING, logger="bot.crm.crypto"):
        crypto.decrypt(crypto.encrypt("a"))
        crypto.encrypt("b")
    warnings = [r for r in caplog.records if "INSECURE development key" in r.getMessage()]
    assert len(warnings) == 1


def test_production_without_key_refuses(monkeypatch):
    _use_key(monkeypatch, None)
    monkeypatch.setenv("CONCIERGE_ENV", "production")
    with pytest.raises(crypto.CRMKeyError, match="CONCIERGE_ENV=production"):
        crypto.encrypt("13812345678")


def test_malformed_key_is_a_clear_error(monkeypatch):
    _use_key(monkeypatch, "not-a-fernet-key")
    with pytest.raises(crypto.CRMKeyError, match="not a valid Fernet key"):
        crypto.encrypt("x")


def test_wrong_key_is_a_clear_error_and_rotation_keeps_old_data(monkeypatch, tmp_path, crm_key):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade(url)
    store = CRMStore(url)
    store.get_or_create_guest("g", phone="13812345678")

    _use_key(monkeypatch, Fernet.generate_key().decode())
    with pytest.raises(crypto.CRMKeyError, match="differs"):
        store.find_guest("g")

    _use_key(monkeypatch, f"{Fernet.generate_key().decode()},{crm_key}")  # new key first, old after
    assert store.find_guest("g").phone == "13812345678"
    store.close()


def test_blind_index_is_stable_and_keyed(monkeypatch):
    first = crypto.blind_index("花生")
    assert first == crypto.blind_index("花生") and "花生" not in first
    _use_key(monkeypatch, Fernet.generate_key().decode())
    assert crypto.blind_index("花生") != first

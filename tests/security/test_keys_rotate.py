"""`concierge keys rotate`: data written under the old key is rewritten under the new one; the
sensitive-tag lookup works before, during and after, because its digest has its own key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from bot.cli import main
from bot.crm import crypto
from bot.crm.db import upgrade
from bot.crm.store import CRMStore
from bot.settings import get_settings

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def use_keys(monkeypatch, keys: str) -> None:
    monkeypatch.setenv("CRM_ENCRYPTION_KEY", keys)
    get_settings.cache_clear()
    crypto.reset_for_tests()


@pytest.fixture
def url(monkeypatch, tmp_path):
    monkeypatch.setenv("CRM_INDEX_KEY", "index-key-that-never-rotates-0123456789")
    use_keys(monkeypatch, OLD)
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    store = CRMStore(url)
    store.get_or_create_guest("g1", name="客人")
    store.update_guest("g1", phone="13800138000", health_notes="哮喘")
    store.upsert_tag("g1", "allergy", "芒果", source_message="我对芒果过敏")
    store.close()
    yield url
    crypto.reset_for_tests()


def tokens(url):
    store = CRMStore(url)
    with store.engine.connect() as conn:
        found = [r[0] for r in conn.execute(text("SELECT phone FROM guests")).all()]
        found += [
            r[0] for r in conn.execute(text("SELECT source_message FROM preference_tags")).all()
        ]
    store.close()
    return [t for t in found if t]


def test_rotation_rewrites_under_the_new_key_and_lookups_survive(monkeypatch, url, capsys):
    use_keys(monkeypatch, f"{NEW},{OLD}")
    assert main(["--database-url", url, "keys", "rotate", "--dry-run", "--json"]) == 0
    assert '"guests.phone": 1' in capsys.readouterr().out
    assert all(Fernet(OLD.encode()).decrypt(t.encode()) for t in tokens(url))  # unchanged
    assert main(["--database-url", url, "keys", "rotate"]) == 0
    use_keys(monkeypatch, NEW)  # the old key is gone
    store = CRMStore(url)
    try:
        guest = store.find_guest("g1")
        assert (guest.phone, guest.health_notes) == ("13800138000", "哮喘")
        [tag] = store.tags("g1")
        assert tag.source_message == "我对芒果过敏"
        assert store.deactivate_tag("g1", "allergy", "芒果")  # found through the digest
        assert store.audit_entries(action="keys.rotate")
    finally:
        store.close()
    for token in tokens(url):
        with pytest.raises(Exception):
            Fernet(OLD.encode()).decrypt(token.encode())


def test_without_the_old_key_it_refuses_and_changes_nothing(monkeypatch, url, capsys):
    before = tokens(url)
    use_keys(monkeypatch, NEW)
    assert main(["--database-url", url, "keys", "rotate"]) == 2
    assert "keep the old key after the new one" in capsys.readouterr().err
    assert tokens(url) == before

"""Staff reads go through bot.audit: the audit log names who read what, and no record, no read."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from bot.audit import Staff, read_profile, staff_read, staff_read_async
from bot.crm import crypto
from bot.crm.db import upgrade
from bot.crm.store import CRMStore, GuestNotFound, StoreUnavailable
from bot.settings import get_settings


@pytest.fixture
def crm(monkeypatch, tmp_path):
    monkeypatch.setenv("CRM_ENCRYPTION_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    crypto.reset_for_tests()
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    store = CRMStore(url)
    store.get_or_create_guest("kf:wm1", name="林女士")
    yield store
    store.close()
    crypto.reset_for_tests()


def test_staff_identity():
    assert Staff("console", "li").actor == "console:li"
    assert Staff.from_actor("advisor:zhou") == Staff("advisor", "zhou")
    for bad in (("console", ""), ("guest", "li")):
        with pytest.raises(ValueError):
            Staff(*bad)
    with pytest.raises(ValueError):
        Staff.from_actor("li")


def test_profile_read_is_audited_with_the_staff_identity(crm):
    profile = read_profile(crm, Staff("console", "li"), "kf:wm1", reason="case #3")
    assert profile["guest"]["display_name"] == "林女士"
    [entry] = crm.audit_entries(subject_type="guest", subject_id="kf:wm1")
    assert (entry.actor, entry.action, entry.detail) == (
        "console:li",
        "profile.view",
        {"reason": "case #3"},
    )


def test_unknown_guest_is_not_found_and_not_audited(crm):
    with pytest.raises(GuestNotFound):
        read_profile(crm, Staff("cli", "alice"), "kf:nobody")
    assert crm.audit_entries() == []


def test_card_read_records_before_reading(crm):
    seen = []

    def read():
        seen.append(len(crm.audit_entries(action="case.view")))
        return {"summary": "空调坏了"}

    card = staff_read(
        crm,
        Staff("advisor", "li"),
        "case.view",
        "ticket",
        7,
        read,
        detail={"case": 12, "fields": ["summary"]},
    )
    assert card == {"summary": "空调坏了"} and seen == [1]
    [entry] = crm.audit_entries(action="case.view")
    assert (entry.actor, entry.subject_type, entry.subject_id) == ("advisor:li", "ticket", "7")
    assert entry.detail == {"case": 12, "fields": ["summary"]}


def test_no_record_no_read(crm):
    crm.close()
    broken = CRMStore("sqlite:////nonexistent-dir/crm.db")
    read_called = []
    with pytest.raises(StoreUnavailable):
        staff_read(
            broken,
            Staff("advisor", "li"),
            "case.view",
            "ticket",
            7,
            lambda: read_called.append(True),
        )
    assert read_called == []


async def test_async_variant_runs_off_the_loop(crm):
    card = await staff_read_async(
        crm, Staff("console", "zhou"), "case.view", "order", 3, lambda: "card"
    )
    assert card == "card"
    assert crm.audit_entries(action="case.view")[0].actor == "console:zhou"

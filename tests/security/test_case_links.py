"""bot.paging.links: the signature covers case, viewer and expiry; bad input is LinkInvalid."""

from __future__ import annotations

import pytest

from bot.paging.links import DEV_SECRET, CaseLinks, LinkInvalid
from bot.settings import get_settings


def test_round_trip_with_a_non_ascii_viewer():
    links = CaseLinks("x" * 40, 60, clock=lambda: 1_000.0)
    access = links.verify(7, links.sign(7, "顾问-李"))
    assert (access.case_id, access.viewer, access.expires_at) == (7, "顾问-李", 1_060)


@pytest.mark.parametrize(
    "sig",
    ["", "é", "1.2", "1.2.3.4", "x.YQ.abc", "99999999999.!!.abc", "1" * 600, "9999999999..abc"],
)
def test_malformed_signatures_are_invalid_not_errors(sig):
    with pytest.raises(LinkInvalid):
        CaseLinks("x" * 40, 60).verify(7, sig)


def test_production_never_uses_the_development_secret(monkeypatch):
    monkeypatch.delenv("PAGING_LINK_SECRET", raising=False)
    monkeypatch.setenv("CONCIERGE_ENV", "production")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="PAGING_LINK_SECRET"):
        CaseLinks.from_settings()
    monkeypatch.setenv("CONCIERGE_ENV", "development")
    get_settings.cache_clear()
    dev = CaseLinks.from_settings()
    assert CaseLinks(DEV_SECRET, 60).verify(1, dev.sign(1, "li")).viewer == "li"
    monkeypatch.setenv("PAGING_LINK_SECRET", "s" * 40)
    monkeypatch.setenv("CASE_LINK_TTL_S", "120")
    get_settings.cache_clear()
    real = CaseLinks.from_settings()
    assert real.ttl_s == 120
    with pytest.raises(LinkInvalid):
        CaseLinks(DEV_SECRET, 60).verify(1, real.sign(1, "li"))

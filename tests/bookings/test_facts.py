"""Profile facts: derived from bookings, stored beside the profile, kept current."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

from bot.bookings.facts import FactsService, compute_facts

D = dt.date


def _b(status, check_in, nights, amount=None, channel=None, property_id="p1"):
    return SimpleNamespace(
        status=status,
        check_in=check_in,
        check_out=check_in + dt.timedelta(days=nights),
        amount=amount,
        channel=channel,
        property_id=property_id,
    )


def test_compute_counts_only_stays_and_windows_the_12_month_spend():
    as_of = D(2026, 12, 1)
    facts = compute_facts(
        [
            _b("completed", D(2024, 5, 1), 2, Decimal("1000.00"), "ctrip", "sanya"),
            _b("completed", D(2026, 3, 1), 3, Decimal("2400.50"), "direct", "shanghai"),
            _b("checked_in", D(2026, 11, 30), 2, None, "direct", "sanya"),
            _b("cancelled", D(2026, 6, 1), 5, Decimal("9999"), "meituan"),
            _b("booked", D(2027, 1, 10), 1, Decimal("800"), "fliggy", "hangzhou"),
        ],
        tier="金卡",
        birthday=D(1990, 5, 2),
        as_of=as_of,
    )
    assert facts.stays == 3
    assert facts.nights == 2 + 3 + 2
    assert facts.total_spend == Decimal("3400.50")
    assert facts.spend_12m == Decimal("2400.50")  # 2024 is outside, the current stay has no amount
    assert (facts.first_stay, facts.last_stay) == (D(2024, 5, 1), D(2026, 11, 30))
    assert facts.next_stay == D(2026, 11, 30)  # checked in, not over yet
    assert facts.cancelled == 1
    assert facts.channel == "fliggy"  # the newest booking that was not cancelled
    assert facts.channels == ("ctrip", "direct", "fliggy")
    assert facts.properties == ("sanya", "shanghai")
    assert (facts.tier, facts.birthday) == ("金卡", D(1990, 5, 2))


def test_a_guest_without_stays_has_empty_facts():
    facts = compute_facts(
        [_b("cancelled", D(2026, 1, 1), 1, Decimal("5"))],
        tier="普通",
        birthday=None,
        as_of=D(2026, 12, 1),
    )
    assert (facts.stays, facts.nights, facts.total_spend) == (0, 0, Decimal("0.00"))
    assert facts.first_stay is None and facts.properties == ()


def test_stored_facts_follow_birthday_and_tier_changes(store, db_url):
    store.get_or_create_guest("g1", name="林", phone="13800000001")
    store.add_booking(
        "g1",
        property_id="sanya",
        check_in=D(2026, 1, 1),
        check_out=D(2026, 1, 4),
        status="completed",
    )
    service = FactsService(store.engine)
    assert service.get("g1") is None  # never computed yet
    assert service.refresh("g1", as_of=D(2026, 12, 1)).nights == 3
    store.update_guest("g1", birthday=D(1991, 2, 3), tier="铂金")
    facts = service.get("g1")
    assert (facts.birthday, facts.tier) == (D(1991, 2, 3), "铂金")
    assert service.refresh_all(as_of=D(2026, 12, 1)) == 1
    assert service.get("unknown") is None and service.refresh("unknown") is None

"""Demo data: the four guests the whole team relies on, idempotent, never in production."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from bot.crm.db import upgrade
from bot.crm.demo import DemoRefused, load_demo
from bot.crm.store import CHINA_TZ, CRMStore

TODAY = dt.date(2026, 11, 23)


def _day(n: int, today: dt.date = TODAY) -> dt.date:
    return today + dt.timedelta(days=n)


def _count(store: CRMStore, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_demo_guests_and_bookings(store):
    load_demo(store.engine, today=TODAY)
    assert [g.sender_id for g in store.list_guests(demo=True)] == [
        "demo-lin",
        "demo-chen",
        "demo-wang",
        "demo-zhao",
        "demo-sun",
        "kf:wm_guest_001",
        "wecom:wm_guest_002",
    ]
    zhou = store.find_guest("kf:wm_guest_001")
    assert (zhou.kf_external_userid, zhou.kf_open_kfid) == ("wm_guest_001", "wk_sandbox_concierge")
    lin = store.find_guest("demo-lin")
    assert (lin.display_name, lin.tier, lin.is_demo) == ("林晓", "金卡", True)
    assert lin.masked_phone.startswith("138****")

    [stay] = store.upcoming_bookings("demo-lin", TODAY)
    assert (stay.property_id, stay.city, stay.room_type, stay.purpose, stay.party_size) == (
        "sanya-haitang-resort",
        "三亚",
        "海景大床房",
        "蜜月",
        2,
    )
    assert (stay.check_in, stay.check_out) == (_day(6), _day(10))
    [pickup] = store.orders_for_booking(stay.id)
    assert pickup.status == "confirmed"
    assert pickup.scheduled_at.astimezone(CHINA_TZ).date() == _day(6)

    chen = store.upcoming_bookings("demo-chen", TODAY)
    assert [(b.property_id, b.check_in, b.check_out, b.purpose, b.room_type) for b in chen] == [
        ("shanghai-bund-hotel", _day(2), _day(4), "商务", "行政大床房")
    ]
    past = [b for b in store.bookings("demo-chen") if b.status == "completed"]
    assert len(past) == 1 and -95 <= (past[0].check_in - TODAY).days <= -85

    wang = store.upcoming_bookings("demo-wang", TODAY)
    assert [
        (b.city, b.check_in, b.check_out, b.purpose, b.party_size, b.room_type) for b in wang
    ] == [
        ("上海", _day(3), _day(5), "亲子", 3, "家庭房"),
        ("三亚", _day(20), _day(25), "亲子", 3, "家庭套房"),
    ]
    assert store.bookings("demo-zhao") == []
    for sender in ("demo-lin", "demo-chen", "demo-wang", "demo-zhao"):
        assert store.has_consent(sender, "marketing")


def test_demo_load_is_idempotent_and_refreshes_dates(store):
    first = load_demo(store.engine, today=TODAY)
    counts = {t: _count(store, t) for t in ("guests", "bookings", "orders", "consents")}
    later = TODAY + dt.timedelta(days=30)
    second = load_demo(store.engine, today=later)
    assert first.created > 0 and second.created == 0
    assert {t: _count(store, t) for t in counts} == counts
    [stay] = store.upcoming_bookings("demo-lin", later)
    assert stay.check_in == _day(6, later)


def test_demo_load_refuses_in_production(store, monkeypatch):
    monkeypatch.setenv("CONCIERGE_ENV", "production")
    with pytest.raises(DemoRefused):
        load_demo(store.engine, today=TODAY)
    assert store.list_guests() == []


def test_demo_load_never_touches_a_real_guest(store):
    store.get_or_create_guest("demo-lin", name="真实客人")
    with pytest.raises(DemoRefused):
        load_demo(store.engine, today=TODAY)
    assert store.find_guest("demo-lin").display_name == "真实客人"
    assert store.list_guests(demo=True) == []  # all or nothing


def test_demo_load_from_url_on_a_migrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    assert load_demo(url, today=TODAY).guests == 7

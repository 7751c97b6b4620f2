"""CRMStore behaviour, on SQLite and PostgreSQL alike (see conftest.db_url)."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from bot.crm.store import (
    CHINA_TZ,
    BookingDTO,
    CRMStore,
    GuestDTO,
    GuestNotFound,
    NotFound,
    StoreUnavailable,
)

TODAY = dt.date(2026, 11, 23)


def _day(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


def _raw(store: CRMStore, sql: str, **params):
    with store.engine.connect() as conn:
        return conn.execute(text(sql), params).all()


# ---- guests -----------------------------------------------------------------------------------


def test_get_or_create_guest_is_idempotent(store):
    first = store.get_or_create_guest("kf:wm123", name="林晓", kf_external_userid="wm123")
    again = store.get_or_create_guest("kf:wm123", name="别的名字")
    assert isinstance(first, GuestDTO)
    assert again.id == first.id
    assert again.display_name == "林晓"  # identities fill blanks, never overwrite
    assert again.kf_external_userid == "wm123"
    assert again.tier == "普通"
    assert _raw(store, "SELECT count(*) FROM guests") == [(1,)]


def test_get_or_create_fills_blank_identity_fields(store):
    store.get_or_create_guest("s1")
    guest = store.get_or_create_guest("s1", name="陈志远", unionid="u-1")
    assert (guest.display_name, guest.unionid) == ("陈志远", "u-1")
    assert store.find_guest_by_identity("unionid", "u-1").sender_id == "s1"


def test_concurrent_first_contact_creates_one_guest(store):
    results, errors = [], []

    def contact():
        try:
            results.append(store.get_or_create_guest("race").id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=contact) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    assert _raw(store, "SELECT count(*) FROM guests") == [(1,)]


def test_guest_validation(store):
    with pytest.raises(ValueError):
        store.get_or_create_guest("")
    with pytest.raises(TypeError):
        store.get_or_create_guest("s1", shoe_size=42)
    with pytest.raises(ValueError):
        store.get_or_create_guest("s1", tier="黑卡")
    assert store.find_guest("s1") is None  # the failed create left nothing behind


def test_update_guest_overwrites_and_unknown_guest_raises(store):
    store.get_or_create_guest("s1", tier="银卡")
    assert store.update_guest("s1", tier="金卡").tier == "金卡"
    with pytest.raises(GuestNotFound):
        store.update_guest("nobody", tier="金卡")


def test_phone_is_encrypted_at_rest(store, crm_key):
    store.get_or_create_guest("s1", phone="13812345678", id_number="110101199001011234")
    [(phone, id_number)] = _raw(store, "SELECT phone, id_number FROM guests")
    assert "13812345678" not in phone and "1234" not in id_number
    assert Fernet(crm_key).decrypt(phone.encode()).decode() == "13812345678"
    guest = store.find_guest("s1")
    assert guest.phone == "13812345678" and guest.masked_phone == "138****5678"
    assert "13812345678" not in repr(guest)  # sensitive fields stay out of logs


# ---- bookings ---------------------------------------------------------------------------------


def test_upcoming_bookings_filters_and_orders(store):
    store.get_or_create_guest("g")
    add = store.add_booking
    later = add(
        "g",
        property_id="sanya-haitang-resort",
        city="三亚",
        check_in=_day(20),
        check_out=_day(25),
        purpose="亲子",
        party_size=3,
    )
    soon = add(
        "g", property_id="shanghai-bund-hotel", city="上海", check_in=_day(3), check_out=_day(5)
    )
    staying = add(
        "g",
        property_id="shanghai-bund-hotel",
        check_in=_day(-2),
        check_out=_day(0),
        status="checked_in",
    )
    add(
        "g",
        property_id="shanghai-bund-hotel",
        check_in=_day(-90),
        check_out=_day(-88),
        status="completed",
    )
    add(
        "g",
        property_id="shanghai-bund-hotel",
        check_in=_day(7),
        check_out=_day(8),
        status="cancelled",
    )
    add("g", property_id="shanghai-bund-hotel", check_in=_day(-5), check_out=_day(-1))  # over

    upcoming = store.upcoming_bookings("g", TODAY)
    assert [b.id for b in upcoming] == [staying.id, soon.id, later.id]
    assert all(isinstance(b, BookingDTO) for b in upcoming)
    assert later.nights == 5 and later.purpose == "亲子" and later.party_size == 3
    assert len(store.bookings("g")) == 6
    assert store.upcoming_bookings("nobody", TODAY) == []


def test_add_booking_validation(store):
    store.get_or_create_guest("g")
    with pytest.raises(ValueError):
        store.add_booking("g", property_id="p", check_in=_day(3), check_out=_day(3))
    with pytest.raises(ValueError):
        store.add_booking("g", property_id="p", check_in=_day(1), check_out=_day(3), purpose="出差")
    with pytest.raises(GuestNotFound):
        store.add_booking("nobody", property_id="p", check_in=_day(1), check_out=_day(3))
    assert store.bookings("g") == []


# ---- tags -------------------------------------------------------------------------------------


def test_tag_upsert_does_not_duplicate(store):
    store.get_or_create_guest("g")
    first = store.upsert_tag("g", "pillow", "荞麦枕", source_message="我睡荞麦枕", confidence=0.6)
    again = store.upsert_tag("g", "pillow", "荞麦枕", source_message="还是要荞麦枕", confidence=0.9)
    assert again.id == first.id
    assert again.confidence == 0.9 and again.source_message == "还是要荞麦枕"
    assert again.updated_at >= first.updated_at
    store.upsert_tag("g", "pillow", "羽绒枕")
    assert [t.value for t in store.tags("g")] == ["荞麦枕", "羽绒枕"]
    assert store.active_tag_values("g") == ["荞麦枕", "羽绒枕"]
    assert store.deactivate_tag("g", "pillow", "羽绒枕") is True
    assert store.active_tag_values("g") == ["荞麦枕"]
    assert len(store.tags("g", active_only=False)) == 2


def test_health_tags_are_encrypted_and_still_deduplicated(store):
    store.get_or_create_guest("g")
    first = store.upsert_tag("g", "allergy", "花生", source_message="我对花生过敏")
    again = store.upsert_tag("g", "allergy", "花生")
    assert again.id == first.id and again.value == "花生"
    raw = _raw(store, "SELECT value, secret_value, source_message FROM preference_tags")
    assert all("花生" not in (cell or "") for cell in raw[0])
    with pytest.raises(GuestNotFound):
        store.upsert_tag("nobody", "bed", "大床")
    with pytest.raises(ValueError):
        store.upsert_tag("g", "bed", "大床", confidence=1.5)


# ---- orders, tickets, handoffs, pages, consents ------------------------------------------------


def test_orders_belong_to_a_booking_and_keep_aware_times(store):
    store.get_or_create_guest("g")
    store.get_or_create_guest("other")
    booking = store.add_booking(
        "g", property_id="sanya-haitang-resort", city="三亚", check_in=_day(6), check_out=_day(10)
    )
    pickup_local = dt.datetime(2026, 11, 29, 14, 30, tzinfo=CHINA_TZ)
    order = store.create_order(
        "g",
        item="接机",
        booking_id=booking.id,
        scheduled_at=pickup_local,
        party_size=2,
        flight_no="HU7081",
    )
    assert order.property_id == "sanya-haitang-resort" and order.status == "requested"
    assert order.scheduled_at == pickup_local
    assert order.scheduled_at.utcoffset() == dt.timedelta(0)
    assert store.orders_for_booking(booking.id) == [order]
    assert store.set_order_status(order.id, "cancelled").status == "cancelled"
    with pytest.raises(ValueError):
        store.set_order_status(order.id, "lost")
    with pytest.raises(ValueError):  # someone else's booking
        store.create_order("other", item="潜水", booking_id=booking.id)
    with pytest.raises(ValueError):  # naive datetimes are refused
        store.create_order("g", item="SPA", scheduled_at=dt.datetime(2026, 11, 29, 10, 0))
    with pytest.raises(NotFound):
        store.set_order_status(99999, "done")


def test_ticket_and_handoff_lifecycles(store):
    store.get_or_create_guest("g")
    ticket = store.create_ticket(
        "g",
        kind="complaint",
        category="noise",
        severity="routine",
        nature="service_failure",
        description="隔壁太吵",
        location="1208",
        since_text="昨晚",
        sla_class="routine_complaint",
    )
    assert ticket.status == "open" and ticket.resolved_at is None
    resolved = store.set_ticket_status(ticket.id, "resolved", rating=5)
    assert resolved.resolved_at is not None and resolved.rating == 5
    with pytest.raises(ValueError):
        store.create_ticket("g", kind="praise")

    handoff = store.create_handoff("g", reason="request_human", sla_class="human_handoff")
    assert store.open_handoff("g").id == handoff.id
    active = store.set_handoff_status(handoff.id, "active", advisor_userid="zhangsan")
    assert active.accepted_at is not None and active.advisor_userid == "zhangsan"
    returned = store.set_handoff_status(handoff.id, "returned")
    assert returned.returned_at is not None
    assert store.open_handoff("g") is None


def test_consent_history_latest_wins(store):
    store.get_or_create_guest("g")
    assert store.has_consent("g", "marketing") is False
    store.set_consent("g", "marketing", True, source="signup")
    assert store.has_consent("g", "marketing") is True
    store.set_consent("g", "marketing", False, source="别再给我发了")
    assert store.has_consent("g", "marketing") is False
    assert [c.granted for c in store.consents("g")] == [True, False]


# ---- profile, audit, deletion -----------------------------------------------------------------


def _full_guest(store: CRMStore) -> None:
    store.get_or_create_guest(
        "g",
        name="林晓",
        tier="金卡",
        phone="+86 138-1234-5678",
        passport_number="E12345678",
        wecom_external_userid="wmABC",
    )
    booking = store.add_booking(
        "g",
        property_id="sanya-haitang-resort",
        city="三亚",
        check_in=_day(6),
        check_out=_day(10),
        purpose="蜜月",
        party_size=2,
    )
    order = store.create_order(
        "g",
        item="接机",
        booking_id=booking.id,
        scheduled_at=dt.datetime(2026, 11, 29, 6, 30, tzinfo=dt.timezone.utc),
    )
    store.upsert_tag("g", "trip_purpose", "蜜月", source_message="我们来度蜜月")
    ticket = store.create_ticket("g", kind="complaint", category="hygiene")
    store.create_handoff("g", reason="angry")
    store.set_consent("g", "marketing", True, source="demo")
    # pages are written by the paging store only; a test writes the rows it needs directly
    _add_page(
        store,
        "ticket",
        ticket.id,
        step="ack",
        recipient="zhangsan",
        due_at=dt.datetime.now(dt.timezone.utc),
    )
    _add_page(store, "order", order.id, step="supplier", recipient="ground-team")
    _add_page(store, "ticket", 424242, step="ack")  # someone else's ticket: not in this profile


def _add_page(store: CRMStore, subject_type: str, subject_id: int, **fields) -> None:
    from bot.crm.db import make_session_factory, session_scope
    from bot.crm.models import Page

    with session_scope(make_session_factory(store.engine)) as s:
        s.add(
            Page(
                subject_type=subject_type,
                subject_id=subject_id,
                status="pending",
                attempt=0,
                **fields,
            )
        )


def test_profile_is_json_with_masked_phone(store):
    _full_guest(store)
    profile = store.profile("g")
    encoded = json.dumps(profile, ensure_ascii=False)
    assert "13812345678" not in encoded and "E12345678" not in encoded
    assert profile["guest"]["phone"] == "138****5678"
    assert profile["guest"]["passport_number"] == "****5678"
    assert profile["tier"] == "金卡"
    assert profile["identities"]["wecom_external_userid"] == "wmABC"
    assert profile["bookings"][0]["check_in"] == _day(6).isoformat()
    assert profile["orders"][0]["scheduled_at"] == "2026-11-29T06:30:00+00:00"
    assert profile["tags"][0]["value"] == "蜜月"
    assert profile["tags"][0]["source_message"] == "我们来度蜜月"
    assert len(profile["tickets"]) == 1 and len(profile["handoffs"]) == 1
    assert profile["consent_state"] == {"marketing": True}
    assert sorted(p["step"] for p in profile["pages"]) == ["ack", "supplier"]
    with pytest.raises(GuestNotFound):
        store.profile("nobody")


def test_profile_access_by_staff_is_audited(store):
    _full_guest(store)
    store.profile("g")  # the bot itself reading: not staff access
    assert store.audit_entries(action="profile.view") == []
    store.profile("g", actor="advisor:zhangsan", reason="complaint #1")
    [entry] = store.audit_entries(subject_type="guest", subject_id="g")
    assert (entry.actor, entry.action) == ("advisor:zhangsan", "profile.view")
    assert entry.detail == {"reason": "complaint #1"}
    assert entry.created_at.tzinfo is not None


def test_record_audit(store):
    store.record_audit("worker", "page.escalate", "ticket", 7, {"to": "supervisor"})
    [entry] = store.audit_entries(subject_type="ticket", subject_id=7)
    assert entry.subject_id == "7" and entry.detail == {"to": "supervisor"}


def test_delete_guest_erases_everything_and_logs_it(store):
    _full_guest(store)
    assert store.delete_guest("g", actor="dpo:li", reason="PIPL request") is True
    assert store.find_guest("g") is None
    for table in ("bookings", "orders", "preference_tags", "tickets", "handoffs", "consents"):
        assert _raw(store, f"SELECT count(*) FROM {table}") == [(0,)], table
    # pages are the paging store's: erasure has it forget them first (tests/security)
    assert _raw(store, "SELECT count(*) FROM pages") == [(3,)]
    [entry] = store.audit_entries(action="guest.delete")
    assert entry.actor == "dpo:li" and entry.detail["deleted"]["bookings"] == 1
    assert store.delete_guest("g", actor="dpo:li") is False


# ---- failure paths ----------------------------------------------------------------------------


def test_unreachable_postgres_raises_store_unavailable():
    store = CRMStore("postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")  # no I/O yet
    with pytest.raises(StoreUnavailable) as info:
        store.find_guest("g")
    assert "unavailable" in str(info.value)
    store.close()


def test_unmigrated_database_raises_store_unavailable(db_url):
    store = CRMStore(db_url)
    try:
        with pytest.raises(StoreUnavailable, match="concierge db upgrade"):
            store.upcoming_bookings("g", TODAY)
    finally:
        store.close()

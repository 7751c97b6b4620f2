"""Tying WeCom senders to booking profiles: parsing, verification, lockout, merge."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.bookings.facts import FactsService
from bot.bookings.identity import Claim, IdentityLinker, parse_claim, parse_proof
from bot.bookings.importer import BookingImporter
from bot.bookings.writer import BookingWriter
from bot.crm import models as m
from bot.crm.errors import GuestNotFound
from bot.knowledge.kb import KnowledgeBase
from tests.bookings.helpers import ZH_HEADERS, write_csv

ROWS = [
    [
        "SYHT01",
        "HT20261205A",
        "林晓",
        "13800138000",
        "2026-12-05",
        "2026-12-09",
        "海景房",
        "2",
        "已确认",
        "携程",
        "4800",
        "金卡",
        "",
        "",
    ],
    [
        "SHBD01",
        "BD7788",
        "陈明",
        "13900139000",
        "2026-12-10",
        "2026-12-12",
        "",
        "1",
        "已确认",
        "",
        "",
        "",
        "",
        "",
    ],
]


@pytest.mark.parametrize(
    "text, claim",
    [
        ("我的订单号是HT20261205A", Claim("booking", "HT20261205A")),
        ("訂單號：ht20261205a", Claim("booking", "ht20261205a")),
        ("手机138 0013 8000", Claim("phone", "13800138000")),
        ("+86 13800138000 订单号 BD7788", Claim("phone", "13800138000")),
        ("ＢＤ７７８８", Claim("booking", "BD7788")),
        ("订单号BD7788，尾号9000", Claim("booking", "BD7788")),
        ("不记得了", None),
        ("12月5号入住", None),
    ],
)
def test_parse_claim(text, claim):
    assert parse_claim(text) == claim


@pytest.mark.parametrize(
    "text, claim, proof",
    [
        ("尾号8000", Claim("booking", "X"), "last4:8000"),
        ("手機後四位是 8000 喔", Claim("booking", "X"), "last4:8000"),
        ("8000", Claim("booking", "X"), "last4:8000"),
        ("13800138000", Claim("booking", "X"), "last4:8000"),
        ("订单号BD7788，尾号9000", Claim("booking", "BD7788"), "last4:9000"),
        ("订单是HT20261205A", Claim("phone", "13800138000"), "ref:HT20261205A"),
        ("12月5号入住", Claim("phone", "13800138000"), "date:--12-05"),
        ("2026年12月5日", Claim("phone", "13800138000"), "date:2026-12-05"),
        ("不知道", Claim("phone", "13800138000"), None),
    ],
)
def test_parse_proof(text, claim, proof):
    assert parse_proof(text, claim) == proof


@pytest.fixture
def linker(store, tmp_path):
    importer = BookingImporter(BookingWriter(store.engine), KnowledgeBase.default())
    importer.import_file(write_csv(tmp_path / "a.csv", ZH_HEADERS, ROWS))
    return IdentityLinker(store.engine)


def test_booking_number_and_last_four_link_and_merge_the_wecom_profile(store, linker):
    store.get_or_create_guest("kf:wmLIN", kf_open_kfid="wkA", kf_external_userid="wmLIN")
    store.upsert_tag("kf:wmLIN", "bed", "大床", source_message="要大床")
    assert not linker.is_linked("kf:wmLIN")
    result = linker.attempt("kf:wmLIN", Claim("booking", "ht20261205a"), "last4:8000")
    assert result.outcome == "linked"
    assert linker.is_linked("kf:wmLIN")
    [booking] = store.upcoming_bookings("kf:wmLIN", dt.date(2026, 12, 1))
    assert booking.city == "三亚"
    assert [t.value for t in store.tags("kf:wmLIN")] == ["大床"]  # the WeCom profile's record kept
    guest = store.find_guest("kf:wmLIN")
    assert guest.sender_id == result.profile_sender_id and guest.display_name == "林晓"
    assert (guest.kf_external_userid, guest.kf_open_kfid) == ("wmLIN", "wkA")
    assert len(store.list_guests()) == 2  # the WeCom profile was merged, not left behind
    assert store.audit_entries(action="identity.link")[0].detail["source"] == "conversation"


def test_phone_with_booking_number_or_check_in_date(store, linker):
    assert linker.attempt("kf:a", Claim("phone", "13900139000"), "ref:bd7788").outcome == "linked"
    assert linker.attempt("kf:b", Claim("phone", "13900139000"), "date:--12-10").outcome == "linked"
    assert store.find_guest("kf:a").id == store.find_guest("kf:b").id  # one profile, two senders


def test_three_failures_lock_and_never_reveal_existence(store, linker):
    clock = [dt.datetime(2026, 12, 1, 8, tzinfo=dt.timezone.utc)]
    linker = IdentityLinker(store.engine, now=lambda: clock[0])
    wrong_existing = linker.attempt("kf:x", Claim("booking", "HT20261205A"), "last4:1111")
    unknown = linker.attempt("kf:x", Claim("booking", "NOPE123"), "last4:8000")
    # A booking that exists with a wrong factor and one that does not: the same answer shape.
    assert (wrong_existing.outcome, wrong_existing.failures_left) == ("mismatch", 2)
    assert (unknown.outcome, unknown.failures_left) == ("mismatch", 1)
    assert wrong_existing.profile_sender_id is None and unknown.profile_sender_id is None
    third = linker.attempt("kf:x", Claim("phone", "13800138000"), "ref:NOPE")
    # The third failure locks linking for LOCK_MINUTES from now, and says until when.
    assert third.outcome == "locked"
    assert third.locked_until == linker.locked_until("kf:x") == clock[0] + linker.lock
    # Even the right answer is refused while locked; after the lock it works.
    assert linker.attempt("kf:x", Claim("booking", "HT20261205A"), "last4:8000").outcome == "locked"
    clock[0] += dt.timedelta(minutes=31)
    assert linker.locked_until("kf:x") is None
    assert linker.attempt("kf:x", Claim("booking", "HT20261205A"), "last4:8000").outcome == "linked"


def test_advisor_link_and_auto_link(store, linker):
    assert linker.link("wecom:wmCHEN", phone="+86 139 0013 9000", actor="advisor:li")
    assert (
        store.upcoming_bookings("wecom:wmCHEN", dt.date(2026, 12, 1))[0].confirmation_no == "BD7788"
    )
    with pytest.raises(GuestNotFound):
        linker.link("kf:z", confirmation_no="NOPE", actor="advisor:li")
    contact = {
        "external_contact": {"external_userid": "wmLIN2", "unionid": "ou_lin"},
        "follow_user": [{"userid": "li", "remark_mobiles": ["13800138000"]}],
    }
    profile = linker.auto_link("kf:wmLIN2", contact)
    assert profile == store.find_guest("kf:wmLIN2").sender_id
    assert store.find_guest("kf:wmLIN2").unionid == "ou_lin"
    assert linker.auto_link("kf:nobody", {"external_contact": {}, "follow_user": []}) is None


def test_merge_keeps_every_record(store, linker):
    store.get_or_create_guest("kf:one")
    store.upsert_tag("kf:one", "bed", "大床")
    store.upsert_tag("kf:one", "diet", "素食")
    store.create_ticket("kf:one", kind="complaint", category="噪音")
    store.set_consent("kf:one", "marketing", True)
    lin = next(g for g in store.list_guests() if g.display_name == "林晓")
    store.upsert_tag(lin.sender_id, "bed", "大床")
    moved = linker.merge(lin.sender_id, "kf:one", actor="cli:test", reason="same person")
    assert moved["tickets"] == 1 and moved["consents"] == 1
    assert sorted(t.value for t in store.tags("kf:one")) == ["大床", "素食"]
    assert store.has_consent(lin.sender_id, "marketing")
    assert FactsService(store.engine).get("kf:one").next_stay == dt.date(2026, 12, 5)
    with store.engine.connect() as conn:
        assert conn.execute(select(m.GuestIdentity.value)).scalars().all() == ["kf:one"]
    profile = store.profile("kf:one")  # staff see the person, with every way they write
    assert profile["facts"]["next_stay"] == "2026-12-05" and profile["facts"]["tier"] == "金卡"
    assert [i["value"] for i in profile["linked_identities"]] == ["kf:one"]
    with pytest.raises(ValueError):
        linker.merge(lin.sender_id, "kf:one", actor="cli:test")


def test_cli_link_and_merge(store, linker, db_url, capsys):
    from bot.cli import main

    assert (
        main(
            [
                "--database-url",
                db_url,
                "guest",
                "link",
                "kf:wmC",
                "--booking",
                "bd7788",
                "--actor",
                "advisor:li",
            ]
        )
        == 0
    )
    assert store.upcoming_bookings("kf:wmC", dt.date(2026, 12, 1))[0].confirmation_no == "BD7788"
    assert main(["--database-url", db_url, "guest", "link", "kf:wmC", "--phone", "12345"]) == 1
    assert "not a mainland mobile" in capsys.readouterr().err
    store.get_or_create_guest("wecom:wmC")
    store.upsert_tag("wecom:wmC", "pet", "带狗")
    chen = store.find_guest("kf:wmC").sender_id
    assert main(["--database-url", db_url, "guest", "merge", chen, "wecom:wmC", "--json"]) == 0
    assert json_out(capsys)["moved"] == {"preference_tags": 1}
    assert [t.value for t in store.tags("wecom:wmC")] == ["带狗"]
    assert main(["--database-url", db_url, "guest", "merge", chen, "kf:missing"]) == 1


def json_out(capsys):
    import json

    return json.loads(capsys.readouterr().out)

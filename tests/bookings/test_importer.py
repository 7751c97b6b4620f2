"""`concierge bookings import` on files shaped like real PMS/OTA exports."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.bookings.facts import FactsService
from bot.bookings.importer import BookingImporter, ImportFileError
from bot.bookings.writer import BookingWriter
from bot.cli import main
from bot.crm import models as m
from bot.knowledge.kb import KnowledgeBase
from tests.bookings.helpers import EN_HEADERS, ZH_HEADERS, write_csv, write_xlsx

TODAY = dt.date(2026, 12, 1)

GOOD_ZH = [
    [
        "SYHT01",
        "C1001",
        "林晓",
        "138 0013 8000",
        "2026-12-05",
        "2026/12/9",
        "海景大床房",
        "2",
        "已确认",
        "携程",
        "￥4,800.00",
        "金卡",
        "1990年5月2日",
        "蜜月，需要玫瑰",
    ],
    [
        "SHBD01",
        "C2001",
        "陈明",
        "+86 139-0013-9000",
        "2026年12月3日",
        "2026年12月5日",
        "行政房",
        "1",
        "已离店",
        "官网",
        "2100",
        "铂金",
        "",
        "",
    ],
    [
        "sanya-haitang-resort",
        "C1002",
        "林晓",
        "8613800138000",
        "2026/1/10",
        "2026/1/12",
        "园景房",
        "2",
        "已离店",
        "美团",
        "1200.5",
        "金卡",
        "",
        "",
    ],
]


@pytest.fixture
def kb():
    return KnowledgeBase.default()


@pytest.fixture
def importer(store, kb):
    return BookingImporter(BookingWriter(store.engine), kb, batch_rows=2)


def _count(store, model) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def test_gbk_csv_with_chinese_headers_and_bad_rows(tmp_path, store, importer):
    bad = [
        [
            "XXXX99",
            "C3001",
            "王五",
            "13700137000",
            "2026-12-05",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],  # unknown property
        [
            "SYHT01",
            "C3002",
            "赵六",
            "13600136000",
            "2026-12-08",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],  # check-out first
        [
            "SYHT01",
            "C3003",
            "孙七",
            "1380013",
            "2026-12-05",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],  # malformed phone
        [
            "SYHT01",
            "",
            "周八",
            "13500135000",
            "2026-12-05",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],  # missing required
        [
            "SYHT01",
            "C1001",
            "林晓",
            "13800138000",
            "2026-12-05",
            "2026-12-09",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],  # duplicate of row 2
        [
            "SYHT01",
            "C3004",
            "吴九",
            "13400134000",
            "2026-13-05",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],  # not a date
        [
            "SYHT01",
            "C3005",
            "郑十",
            "13300133000",
            "2026-12-05",
            "2026-12-06",
            "",
            "2",
            "待定",
            "",
            "",
            "",
            "",
            "",
        ],  # unknown status
    ]
    path = write_csv(tmp_path / "订单.csv", ZH_HEADERS, GOOD_ZH + bad, encoding="gbk")
    report = importer.import_file(path, as_of=TODAY)
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    reasons = {r["row"]: r["reason"] for r in report.rejected}
    assert sorted(reasons) == [5, 6, 7, 8, 9, 10, 11]
    assert "unknown property 'XXXX99'" in reasons[5]
    assert "check_out 2026-12-06 is not after check_in 2026-12-08" in reasons[6]
    assert "phone '1380013' is not a mainland mobile number" in reasons[7]
    assert reasons[8] == "confirmation_no is missing"
    assert reasons[9].startswith("duplicate of row 2")
    assert "is not a date" in reasons[10]
    assert "unknown status '待定'" in reasons[11]
    # Nothing of a rejected row was written: no guest for its phone, no booking.
    assert _count(store, m.Booking) == 3
    assert _count(store, m.Guest) == 2  # 林晓 twice (same phone, written 3 ways), 陈明 once

    guest = next(g for g in store.list_guests() if g.display_name == "林晓")
    assert guest.phone == "13800138000" and guest.tier == "金卡"
    assert guest.birthday == dt.date(1990, 5, 2)
    bookings = {b.confirmation_no: b for b in store.bookings(guest.sender_id)}
    sanya = bookings["C1001"]
    assert (sanya.property_id, sanya.city) == ("sanya-haitang-resort", "三亚")
    assert (sanya.check_in, sanya.check_out, sanya.party_size) == (
        dt.date(2026, 12, 5),
        dt.date(2026, 12, 9),
        2,
    )
    assert (sanya.status, sanya.channel, sanya.amount) == ("booked", "携程", Decimal("4800.00"))
    assert sanya.notes == "蜜月，需要玫瑰"
    facts = FactsService(store.engine).get(guest.sender_id)
    assert (facts.stays, facts.nights, facts.total_spend) == (1, 2, Decimal("1200.50"))
    assert facts.next_stay == dt.date(2026, 12, 5) and facts.channel == "携程"

    again = importer.import_file(path, as_of=TODAY)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert len(again.rejected) == 7


def test_every_other_rejection_reason(tmp_path, importer):
    rows = [
        [
            "SYHT01",
            "D1",
            "甲",
            "13800138001",
            "2026-12-05",
            "2026-12-06",
            "",
            "0",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
        [
            "SYHT01",
            "D2",
            "乙",
            "13800138002",
            "2026-12-05",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "abc",
            "",
            "",
            "",
        ],
        [
            "SYHT01",
            "D3",
            "丙",
            "13800138003",
            "2026-12-05",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "",
            "黑卡",
            "",
            "",
        ],
        [
            "SYHT01",
            "D4",
            "丁",
            "13800138004",
            "2026-12-05",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "",
            "",
            "1800-01-01",
            "",
        ],
        [
            "SYHT01",
            "D5",
            "",
            "13800138005",
            "2026-12-05",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
        ["SYHT01", "D6", "戊", "", "2026-12-05", "2026-12-06", "", "", "", "", "", "", "", ""],
        ["SYHT01", "D7", "己", "13800138007", "", "2026-12-06", "", "", "", "", "", "", "", ""],
        [
            "SYHT01",
            "D8" * 20,
            "庚",
            "13800138008",
            "2026-12-05",
            "2026-12-06",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
        [
            "SYHT01",
            "D9",
            "辛",
            "13800138009",
            "2026-12-05",
            "2028-12-06",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ],
    ]
    report = importer.import_file(write_csv(tmp_path / "x.csv", ZH_HEADERS, rows), as_of=TODAY)
    reasons = [r["reason"] for r in sorted(report.rejected, key=lambda r: r["row"])]
    assert report.created == 0 and len(reasons) == 9
    assert "party_size 0 is outside" in reasons[0]
    assert "amount 'abc' is not a number" in reasons[1]
    assert "unknown tier '黑卡'" in reasons[2]
    assert "birthday 1800-01-01 is not plausible" in reasons[3]
    assert reasons[4] == "guest_name is missing"
    assert reasons[5] == "phone is missing"
    assert reasons[6] == "check_in is missing"
    assert "confirmation_no is longer than 32" in reasons[7]
    assert "nights is not plausible" in reasons[8]


def test_utf8_bom_with_english_headers_and_mixed_dates(tmp_path, store, importer):
    rows = [
        [
            "SYHT01",
            "E1",
            "Lin Xiao",
            "13800138000",
            "2026-12-05",
            "2026/12/7",
            "",
            "2",
            "confirmed",
            "direct",
            "3000",
            "gold",
            "",
            "",
        ],
        [
            "SHBD01",
            "E2",
            "Chen",
            "13900139000",
            "2026年12月10日",
            "2026-12-12 00:00:00",
            "",
            "1",
            "checked_out",
            "ctrip",
            "",
            "platinum",
            "1985/3/4",
            "",
        ],
    ]
    path = write_csv(tmp_path / "export.csv", EN_HEADERS, rows, bom=True)
    report = importer.import_file(path, as_of=TODAY)
    assert (report.created, report.rejected) == (2, [])
    chen = next(g for g in store.list_guests() if g.display_name == "Chen")
    assert (chen.tier, chen.birthday) == ("铂金", dt.date(1985, 3, 4))
    [booking] = store.bookings(chen.sender_id)
    assert (booking.check_in, booking.check_out, booking.status) == (
        dt.date(2026, 12, 10),
        dt.date(2026, 12, 12),
        "completed",
    )


def test_xlsx_with_date_cells(tmp_path, store, importer):
    rows = [
        [
            "SYHT01",
            90001,
            "林晓",
            13800138000,
            dt.datetime(2026, 12, 5),
            dt.datetime(2026, 12, 8),
            "海景房",
            2,
            "已确认",
            "飞猪",
            3600.0,
            "金卡",
            None,
            None,
        ]
    ]
    path = write_xlsx(tmp_path / "订单.xlsx", ZH_HEADERS, rows)
    report = importer.import_file(path, as_of=TODAY)
    assert (report.created, report.rejected) == (1, [])
    [booking] = store.bookings(store.list_guests()[0].sender_id)
    assert booking.confirmation_no == "90001"  # not "90001.0"
    assert booking.nights == 3 and booking.amount == Decimal("3600.00")


def test_moved_and_cancelled_bookings_update_and_are_reported(tmp_path, store, importer):
    path = write_csv(tmp_path / "a.csv", ZH_HEADERS, GOOD_ZH, encoding="gbk")
    importer.import_file(path, as_of=TODAY)
    moved = [list(r) for r in GOOD_ZH]
    moved[0][4], moved[0][5] = "2026-12-06", "2026-12-10"
    moved[1][8] = "已取消"  # was 已离店: a cancellation of a past stay is still a change
    report = importer.import_file(write_csv(tmp_path / "b.csv", ZH_HEADERS, moved), as_of=TODAY)
    assert (report.created, report.updated, report.unchanged) == (0, 2, 1)
    kinds = {c.kind: c for c in report.changes}
    assert set(kinds) == {"moved", "cancelled"}
    assert (kinds["moved"].old_check_in, kinds["moved"].check_in) == (
        dt.date(2026, 12, 5),
        dt.date(2026, 12, 6),
    )
    chen = next(g for g in store.list_guests() if g.display_name == "陈明")
    assert FactsService(store.engine).get(chen.sender_id).stays == 0  # facts followed


def test_dry_run_counts_but_writes_nothing(tmp_path, store, importer):
    path = write_csv(tmp_path / "a.csv", ZH_HEADERS, GOOD_ZH)
    report = importer.import_file(path, dry_run=True, as_of=TODAY)
    assert report.created == 3
    assert _count(store, m.Booking) == 0 and _count(store, m.Guest) == 0


@pytest.mark.parametrize(
    "content, why",
    [
        (b"", "is empty"),
        ("酒店,订单\n".encode("utf-16"), "binary"),
        (b"\xff\xfe\xfa\x80\x81 not text at all \xc3\x28", "neither UTF-8 nor GBK"),
        ("房型,人数\n海景房,2\n".encode("utf-8"), "missing required column"),
        (b"PK\x03\x04 broken zip", "not a readable XLSX"),
    ],
)
def test_unreadable_files_raise(tmp_path, importer, content, why):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=why):
        importer.import_file(path)


def test_cli_json_counts_and_exit_codes(tmp_path, store, db_url, capsys):
    path = write_csv(
        tmp_path / "订单.csv",
        ZH_HEADERS,
        GOOD_ZH
        + [
            [
                "XXXX99",
                "C9",
                "王五",
                "13700137000",
                "2026-12-05",
                "2026-12-06",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            ]
        ],
        encoding="gbk",
    )
    assert main(["--database-url", db_url, "bookings", "import", str(path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": [{"row": 5, "reason": "unknown property 'XXXX99'"}],
    }
    assert main(["--database-url", db_url, "bookings", "import", str(path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["unchanged"] == 3
    assert store.audit_entries(action="bookings.import")[0].detail["created"] == 0
    assert main(["--database-url", db_url, "bookings", "import", str(tmp_path / "nope.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err

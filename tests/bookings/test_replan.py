"""A booking that moves or is cancelled re-plans its add-ons and tells the guest once."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from bot.bookings.importer import BookingImporter
from bot.bookings.notices import deliver_pending
from bot.bookings.replan import Replanner
from bot.bookings.writer import BookingWriter
from bot.crm import models as m
from bot.crm.store import CHINA_TZ
from bot.knowledge.kb import KnowledgeBase
from tests.bookings.helpers import ZH_HEADERS, write_csv

ROW = [
    "SYHT01",
    "R1",
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
]


def _at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, tzinfo=CHINA_TZ)


def _setup(tmp_path, store):
    replanner = Replanner(store)
    importer = BookingImporter(
        BookingWriter(store.engine), KnowledgeBase.default(), on_changes=replanner.handle
    )
    importer.import_file(write_csv(tmp_path / "a.csv", ZH_HEADERS, [ROW]))
    guest = store.list_guests()[0]
    [booking] = store.bookings(guest.sender_id)
    pickup = store.create_order(
        guest.sender_id, item="airport_pickup", booking_id=booking.id, scheduled_at=_at(5, 14)
    )
    spa = store.create_order(
        guest.sender_id,
        item="spa",
        booking_id=booking.id,
        scheduled_at=_at(8, 19),
        status="confirmed",
    )
    return importer, guest, booking, pickup, spa


def _rows(store, model):
    with store.engine.connect() as conn:
        return conn.execute(select(model)).all()


def test_moved_dates_flag_orders_outside_the_new_stay(tmp_path, store):
    importer, guest, booking, pickup, spa = _setup(tmp_path, store)
    moved = list(ROW)
    moved[4], moved[5] = "2026-12-07", "2026-12-10"  # the pickup on the 5th is now before arrival
    report = importer.import_file(write_csv(tmp_path / "b.csv", ZH_HEADERS, [moved]))
    assert report.updated == 1
    [ticket] = store.tickets(guest.sender_id)
    assert (ticket.kind, ticket.sla_class, ticket.booking_id) == (
        "booking_change",
        "addon_order",
        booking.id,
    )
    assert f"#{pickup.id}" in ticket.description and f"#{spa.id}" not in ticket.description
    assert store.order(pickup.id).status == "requested"  # the advisor decides, not the bot
    assert _rows(store, m.GuestNotice) == []  # a move is the advisor's conversation


def test_cancellation_cancels_open_orders_and_tells_the_guest_once(tmp_path, store):
    importer, guest, booking, pickup, spa = _setup(tmp_path, store)
    done = store.create_order(
        guest.sender_id, item="late_checkout", booking_id=booking.id, status="done"
    )
    cancelled = list(ROW)
    cancelled[8] = "已取消"
    path = write_csv(tmp_path / "c.csv", ZH_HEADERS, [cancelled])
    importer.import_file(path)
    assert [store.order(o.id).status for o in (pickup, spa, done)] == [
        "cancelled",
        "cancelled",
        "done",
    ]
    [notice] = _rows(store, m.GuestNotice)
    assert notice.key == f"booking:{booking.id}:cancelled" and notice.status == "pending"
    # The same cancellation again (re-import, a replayed push): nothing new to say.
    importer.import_file(path)
    Replanner(store).handle(importer.writer.write([(2, _row(cancelled))]).changes)
    assert len(_rows(store, m.GuestNotice)) == 1

    said = []

    async def say(sender_id, text, *, dedupe_key):
        said.append((sender_id, text, dedupe_key))

    # No WeCom identity yet: nothing to send on, and it is said so.
    assert asyncio.run(deliver_pending(store.engine, say)) == 0
    assert _rows(store, m.GuestNotice)[0].status == "no_channel"


def _row(cells):
    from bot.bookings.rows import HEADERS, parse_row

    return parse_row(dict(zip(HEADERS, cells)), KnowledgeBase.default())


def test_notice_goes_to_the_linked_wecom_sender_and_retries(tmp_path, store):
    importer, guest, booking, *_ = _setup(tmp_path, store)
    with store.engine.begin() as conn:
        conn.execute(
            m.GuestIdentity.__table__.insert().values(
                guest_id=guest.id,
                kind="sender",
                value="kf:wmLIN",
                source="test",
                created_at=m.utcnow(),
            )
        )
    cancelled = list(ROW)
    cancelled[8] = "已取消"
    importer.import_file(write_csv(tmp_path / "c.csv", ZH_HEADERS, [cancelled]))
    calls = []

    async def flaky(sender_id, text, *, dedupe_key):
        calls.append((sender_id, text, dedupe_key))
        if len(calls) == 1:
            raise RuntimeError("rasa down")

    assert asyncio.run(deliver_pending(store.engine, flaky)) == 0
    assert _rows(store, m.GuestNotice)[0].status == "pending"
    assert asyncio.run(deliver_pending(store.engine, flaky)) == 1
    assert asyncio.run(deliver_pending(store.engine, flaky)) == 0  # sent: never again
    sender_id, text, key = calls[-1]
    assert sender_id == "kf:wmLIN" and key == calls[0][2]
    assert "已经取消" in text and "订单号 R1" in text and "接机、SPA" in text

"""What a booking change re-plans: called with the `BookingChange`s an import or a PMS push
produced, after they were committed.

- **Cancelled:** its open add-on orders (requested/confirmed) are cancelled, and the guest is
  told once, politely (`bot.bookings.notices`, key `booking:<id>:cancelled`: a re-import or a
  replayed push cannot tell them twice).
- **Moved:** add-on orders scheduled outside the new stay are not changed by the bot (which day
  the guest wants is a person's question): they are flagged to the advisor as a
  `booking_change` ticket with the `addon_order` SLA class, which the paging worker pages like
  any order. Orders inside the new stay need nothing. Touchpoints are computed from the
  booking's dates when they run, so they follow the move by themselves.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Iterable

from sqlalchemy import select

from bot.bookings.notices import queue_notice
from bot.bookings.writer import BookingChange
from bot.crm import models as m
from bot.crm.db import make_session_factory, session_scope
from bot.crm.store import CHINA_TZ, CRMStore
from bot.bookings.texts import render
from bot.knowledge.kb import KnowledgeBase

log = logging.getLogger(__name__)

OPEN_ORDER_STATUSES = ("requested", "confirmed")


def _local_day(value: dt.datetime | None) -> dt.date | None:
    return value.astimezone(CHINA_TZ).date() if value else None


def outside_stay(order: m.Order, check_in: dt.date, check_out: dt.date) -> bool:
    """An order whose day is before arrival or after departure (no time: it moves with the
    stay, nothing to flag)."""
    day = _local_day(order.scheduled_at)
    return day is not None and not check_in <= day <= check_out


class Replanner:
    def __init__(self, store: CRMStore, kb: KnowledgeBase | None = None):
        self.store = store
        self.kb = kb
        self._factory = make_session_factory(store.engine)

    def handle(self, changes: Iterable[BookingChange]) -> None:
        for change in changes:
            try:
                with session_scope(self._factory) as s:
                    if change.kind == "cancelled":
                        self._cancelled(s, change)
                    elif change.kind == "moved":
                        self._moved(s, change)
            except Exception:  # one booking's re-plan must not stop the others'
                log.exception("re-planning booking %s (%s) failed", change.booking_id, change.kind)

    def _hotel(self, property_id: str) -> str:
        kb = self.kb or KnowledgeBase.default()
        prop = kb.property(property_id)
        return prop.name if prop else property_id

    def _open_orders(self, s, booking_id: int) -> list[m.Order]:
        return (
            s.execute(
                select(m.Order)
                .where(m.Order.booking_id == booking_id, m.Order.status.in_(OPEN_ORDER_STATUSES))
                .order_by(m.Order.id)
            )
            .scalars()
            .all()
        )

    def _cancelled(self, s, change: BookingChange) -> None:
        booking = s.get(m.Booking, change.booking_id)
        if booking is None or booking.status != "cancelled":
            return  # changed again since: the newer state decides
        orders = self._open_orders(s, booking.id)
        for order in orders:
            order.status = "cancelled"
        guest = s.get(m.Guest, booking.guest_id)
        text = render(
            "cancelled",
            name=guest.display_name if guest else None,
            hotel=self._hotel(booking.property_id),
            check_in=booking.check_in,
            confirmation_no=booking.confirmation_no,
            orders=[self.store_label(o.item) for o in orders],
        )
        queue_notice(s, booking.guest_id, f"booking:{booking.id}:cancelled", text)
        s.add(
            m.AuditLog(
                actor="system:replan",
                action="booking.cancelled",
                subject_type="booking",
                subject_id=str(booking.id),
                detail={"orders_cancelled": [o.id for o in orders]},
            )
        )

    def _moved(self, s, change: BookingChange) -> None:
        booking = s.get(m.Booking, change.booking_id)
        if booking is None or booking.status == "cancelled":
            return
        stranded = [
            o
            for o in self._open_orders(s, booking.id)
            if outside_stay(o, booking.check_in, booking.check_out)
        ]
        if not stranded:
            return
        description = render(
            "moved_orders",
            confirmation_no=booking.confirmation_no,
            hotel=self._hotel(booking.property_id),
            old_check_in=change.old_check_in,
            old_check_out=change.old_check_out,
            check_in=booking.check_in,
            check_out=booking.check_out,
            orders=[
                {
                    "id": o.id,
                    "item": self.store_label(o.item),
                    "when": o.scheduled_at.astimezone(CHINA_TZ).strftime("%m-%d %H:%M"),
                }
                for o in stranded
            ],
        )
        s.add(
            m.Ticket(
                guest_id=booking.guest_id,
                booking_id=booking.id,
                kind="booking_change",
                category="加购需改期",
                severity="routine",
                description=description,
                sla_class="addon_order",
                status="open",
            )
        )

    @staticmethod
    def store_label(item: str) -> str:
        """The add-on's Chinese name from the catalogue (the id when it has none)."""
        from bot.orders.catalogue import Catalogue, CatalogueError

        try:
            found = Catalogue.default().item_by_name(item)
        except (CatalogueError, OSError):  # the label is a nicety: never fail the re-plan on it
            return item
        return found.name if found else item

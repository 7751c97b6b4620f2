"""The supplier's answer to an add-on order, recorded by an advisor: confirmed, or declined.

Acknowledging a page (接单) only says an advisor is on it; whether the spa, the boat or the driver
can do it is the supplier's call. The advisor records that answer here -- from the WeCom app
(`确认 N [说明]` / `婉拒 N 原因`, bot/paging/service.py) or from the staff console, which calls
`SupplierDesk.confirm` / `decline` directly. Each moves the order on, closes its SLA clock (the
loop is closed: the guest has their answer), tells the guest in their own words and is audited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from bot.orders import state
from bot.orders.catalogue import Catalogue
from bot.orders.service import render
from bot.orders.when import china_now, describe

log = logging.getLogger(__name__)

CONFIRMED, DECLINED = "confirmed", "declined"
MAX_TEXT = 500


@dataclass(frozen=True)
class SupplierOutcome:
    """What happened; `message` is the advisor-facing sentence (Chinese)."""

    status: str  # confirmed | declined | already | closed | not_found | invalid
    message: str
    order_id: Optional[int] = None
    case_id: Optional[int] = None
    guest_told: bool = False

    @property
    def ok(self) -> bool:
        return self.status in (CONFIRMED, DECLINED)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class SupplierDesk:
    crm: Any  # bot.crm.store.CRMStore
    paging: Any  # bot.paging.store.PagingStore
    messenger: Any  # bot.paging.pager.Messenger (guest_text)
    catalogue: Catalogue = field(default_factory=Catalogue.default)
    names: Callable[[str], str] = lambda userid: "顾问"  # advisor userid -> the name guests see
    clock: Callable[[], dt.datetime] = _utcnow

    async def confirm(
        self, order_id: int, advisor: str, note: Optional[str] = None
    ) -> SupplierOutcome:
        """The supplier can do it: order confirmed, clock closed, guest told."""
        return await self._decide(order_id, advisor, CONFIRMED, (note or "").strip()[:MAX_TEXT])

    async def decline(self, order_id: int, advisor: str, reason: str) -> SupplierOutcome:
        """The supplier cannot: order cancelled with the reason, clock closed, guest told with
        an apology and that the advisor will look for another time or plan."""
        reason = (reason or "").strip()[:MAX_TEXT]
        if not reason:
            return SupplierOutcome(
                "invalid", "请写上原因，客人会看到，例如：婉拒 12 当天船满了", order_id
            )
        return await self._decide(order_id, advisor, DECLINED, reason)

    async def _decide(
        self, order_id: int, advisor: str, decision: str, text: str
    ) -> SupplierOutcome:
        order = await asyncio.to_thread(self.crm.order, order_id)
        if order is None:
            return SupplierOutcome("not_found", f"没有订单 {order_id}。", order_id)
        clock = await asyncio.to_thread(self.paging.clock_for, "order", order_id)
        case_id = clock.id if clock else None
        if order.status == state.CONFIRMED and decision == CONFIRMED:
            return SupplierOutcome(
                "already",
                f"订单 {order_id}（{order.item}）已经是供应商确认状态。",
                order_id,
                case_id,
            )
        if not state.can_move(
            order.status, state.CONFIRMED if decision == CONFIRMED else state.CANCELLED
        ):
            return SupplierOutcome(
                "closed",
                f"订单 {order_id}（{order.item}）"
                f"{state.LABELS.get(order.status, order.status)}，不能再改。",
                order_id,
                case_id,
            )
        now = self.clock()
        resolution = ("供应商已确认" if decision == CONFIRMED else "供应商无法安排") + (
            f"：{text}" if text else ""
        )
        if clock is not None and clock.is_open:
            # the clock first: the worker must not take a declined order for a guest's cancel
            await asyncio.to_thread(
                self.paging.resolve, clock.id, advisor, resolution, now, notice=False
            )
        await asyncio.to_thread(
            self.crm.set_order_status,
            order_id,
            state.CONFIRMED if decision == CONFIRMED else state.CANCELLED,
        )
        sender = await asyncio.to_thread(self.crm.sender_id_of, order.guest_id)
        try:
            await asyncio.to_thread(
                self.crm.record_audit,
                f"advisor:{advisor}",
                f"order.supplier_{decision}",
                "order",
                order_id,
                {"case": case_id, "text": text or None},
            )
        except Exception as exc:  # the decision stands; the log says the audit row is missing
            log.error("audit of order %s %s not recorded: %s", order_id, decision, exc)
        guest_told = False
        if sender:
            words = self._guest_text(order, advisor, decision, text)
            try:
                await self.messenger.guest_text(
                    sender, words, dedupe_key=f"order:{order_id}:{decision}"
                )
                guest_told = True
            except Exception as exc:
                log.warning("order %s: guest not told of %s: %s", order_id, decision, exc)
        told = "客人已收到通知" if guest_told else "但通知客人失败，请直接联系客人"
        case = f"#{case_id} " if case_id else ""
        if decision == CONFIRMED:
            message = f"已记录 {case}订单 {order_id}（{order.item}）供应商确认，{told}。"
        else:
            message = (
                f"已记录 {case}订单 {order_id}（{order.item}）供应商无法安排，订单已取消，"
                f"{told}。请联系客人商量其他时间或方案。"
            )
        return SupplierOutcome(decision, message, order_id, case_id, guest_told)

    def _guest_text(self, order, advisor: str, decision: str, text: str) -> str:
        offer = None
        item = self.catalogue.item_by_name(order.item)
        if item is not None and order.property_id:
            offer = self.catalogue.offer(order.property_id, item.id)
        when = describe(order.scheduled_at, now=china_now()) if order.scheduled_at else None
        common = dict(
            item=order.item,
            order_id=order.id,
            when=when,
            supplier=(offer.supplier if offer and offer.supplier else "酒店"),
            advisor=self.names(advisor),
        )
        if decision == CONFIRMED:
            return render("supplier_confirmed", note=text or None, **common)
        return render("supplier_declined", reason=text, **common)

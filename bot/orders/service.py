"""Add-on orders: check what the guest asked for against the catalogue and the stay, confirm,
create the order in the CRM, report its status, cancel it.

The Rasa form (`actions/orders.py`) keeps the half-filled order in slots and calls the `check_*`
methods; each returns a `Check`: the accepted slot value, or None with the reason said to the
guest. Nothing here talks to Rasa.

Hard rules (the value is refused, the form asks again): an item the property does not offer, a
time in the past, a day outside the stay window of the item (arrival / departure / stay), a time
outside the item's hours, a party below 1 or above the item's maximum, a malformed flight number.
Soft rule (accepted, and said): shorter notice than the item's lead time -- whether it can still
be done is the supplier's call, made by the advisor the order pages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.crm.store import CRMStore, StoreUnavailable
from bot.orders import state
from bot.orders.catalogue import Catalogue, Item, Offer
from bot.orders.when import CHINA_TZ, When, china_now, describe
from bot.replies import Reply
from bot.settings import PROJECT_ROOT
from bot.sla_terms import ADDON_ORDER, SlaTerms, default_terms

log = logging.getLogger(__name__)

OP_CREATE = "orders.create"
OP_CANCEL = "orders.cancel"
TEMPLATE_DIR = PROJECT_ROOT / "bot" / "templates" / "orders"

_FLIGHT_RE = re.compile(r"(?<![a-z0-9])([a-z]{2}|[a-z]\d|\d[a-z])\s?(\d{3,4})(?![0-9])", re.I)
_TRAIN_RE = re.compile(r"(?<![a-z0-9])([gdckzt])(\d{1,4})(?![0-9])", re.I)
_CN_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "俩": 2,
    "三": 3,
    "仨": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_PARTY_RE = re.compile(
    r"(\d{1,4}|[零一二两俩三仨四五六七八九十百]{1,4})\s*(?:个人|个大人|位大人|位客人|位|人|口人|大人)"
)
_NUM = r"(\d{1,3}|[一二两俩三仨四五六七八九十]{1,3})"
# "两大一小", "2大1小", "三个大人两个小孩": adults and children add up
_MIXED_RE = re.compile(
    _NUM
    + r"\s*(?:个|位)?\s*(?:大人|成人|大)\s*[，, 和加带]?\s*"
    + _NUM
    + r"\s*(?:个|位)?\s*(?:小孩|孩子|儿童|小朋友|小)"
)
# "我们四个", "一共五个", "总共3个"
_GROUP_RE = re.compile(r"(?:我们|咱们|一共|总共|共)\s*" + _NUM + r"\s*个(?!小时|月|晚|房)")
# "一家三口", "一家六口人", "三口之家": any number of family members
_FAMILY_RE = re.compile(r"一家" + _NUM + r"口|" + _NUM + r"口之家")
_PARTY_PHRASES = (
    (
        re.compile(
            r"我们俩|我俩|咱俩|两口子|(?:夫妻|母女|父子|母子|父女|姐妹|兄弟|闺蜜)俩|俩个?人"
            r"|我和(?:老公|老婆|太太|先生|爱人|男朋友|女朋友|朋友)"
        ),
        2,
    ),
    (re.compile(r"就我一个|我一个人|我自己|就我自己|只有我"), 1),
)
_ORDER_ID_RE = re.compile(r"(?:订单号?|单号|#)\s*(\d{1,9})|(\d{1,9})\s*号订单")


def chinese_number(text: str) -> Optional[int]:
    """ "3" / "三" / "十二" / "二十" / "两百" -> int (what guests type for party sizes)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if not text or any(ch not in _CN_DIGITS and ch not in "十百" for ch in text):
        return None
    total, current = 0, 0
    for ch in text:
        if ch == "百":
            total += (current or 1) * 100
            current = 0
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = _CN_DIGITS[ch]
    return total + current


def parse_party(text: str, *, bare_number: bool = False) -> Optional[int]:
    """The party size a message states, or None. `bare_number`: "3" alone counts (the form just
    asked "几位？")."""
    if not text:
        return None
    m = _FAMILY_RE.search(text)
    if m:
        return chinese_number(m.group(1) or m.group(2))
    for pattern, size in _PARTY_PHRASES:
        if pattern.search(text):
            return size
    m = _MIXED_RE.search(text)
    if m:
        adults, kids = chinese_number(m.group(1)), chinese_number(m.group(2))
        if adults is not None and kids is not None:
            return adults + kids
    m = _GROUP_RE.search(text)
    if m:
        return chinese_number(m.group(1))
    m = _PARTY_RE.search(text)
    if m:
        return chinese_number(m.group(1))
    if bare_number:
        stripped = text.strip().rstrip("。.!！")
        return chinese_number(stripped)
    return None


def parse_flight(text: str) -> Optional[str]:
    """ "ca 1234" -> "CA1234"; train numbers ("G1234") too. None if the message has none."""
    if not text:
        return None
    m = _FLIGHT_RE.search(text)
    if m:
        return (m.group(1) + m.group(2)).upper()
    m = _TRAIN_RE.search(text)
    if m:
        return (m.group(1) + m.group(2)).upper()
    return None


@dataclass(frozen=True)
class Check:
    value: Any = None
    message: Optional[str] = None
    slots: dict = field(default_factory=dict)
    stop: bool = False

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class Draft:
    """A half-filled or finished order, as the form's slots hold it."""

    item_id: str
    at: Optional[str] = None  # ISO datetime, China time
    party: Optional[int] = None
    flight_no: Optional[str] = None
    notes: Optional[str] = None
    booking_id: Optional[int] = None

    def to_payload(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_payload(cls, payload: dict) -> "Draft":
        return cls(**{f.name: payload.get(f.name) for f in dataclasses.fields(cls)})

    @property
    def scheduled_at(self) -> Optional[dt.datetime]:
        return dt.datetime.fromisoformat(self.at) if self.at else None


_env: Environment | None = None
_env_lock = threading.Lock()


def render(template: str, **context: Any) -> str:
    """Render bot/templates/orders/<template>.j2; blank lines dropped (WeCom shows them as gaps)."""
    global _env
    with _env_lock:
        if _env is None:
            _env = Environment(
                loader=FileSystemLoader(str(TEMPLATE_DIR)),
                undefined=StrictUndefined,
                autoescape=False,
                lstrip_blocks=True,
            )
    text = _env.get_template(f"{template}.j2").render(**context)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


@dataclass
class OrderService:
    store: CRMStore
    catalogue: Catalogue = field(default_factory=Catalogue.default)
    kb: Any = None  # bot.knowledge.kb.KnowledgeBase, for property names
    terms: SlaTerms = field(default_factory=default_terms)
    now: Callable[[], dt.datetime] = china_now

    # ---- context ---------------------------------------------------------------------------
    def bookings(self, sender_id: str) -> Optional[list]:
        """Upcoming bookings, or None when the CRM cannot be reached (checks then skip the stay)."""
        try:
            return self.store.upcoming_bookings(sender_id, self.now().date())
        except StoreUnavailable as exc:
            log.warning("order checks without the stay (CRM unavailable): %s", exc)
            return None

    def property_name(self, property_id: Optional[str]) -> str:
        if property_id and self.kb is not None:
            prop = self.kb.property(property_id)
            if prop is not None:
                return prop.name
        return "酒店"

    def _properties(self, bookings: Optional[list], booking_id: Optional[int]) -> list[str]:
        if bookings is None:
            return list(self.catalogue.offers)
        if booking_id is not None:
            chosen = [b.property_id for b in bookings if b.id == booking_id]
            if chosen:
                return chosen
        return list(dict.fromkeys(b.property_id for b in bookings))

    def menu(self, property_id: str) -> str:
        return "、".join(o.item.name for o in self.catalogue.offered(property_id))

    def item(self, item_id: Optional[str]) -> Optional[Item]:
        return self.catalogue.items.get(item_id) if item_id else None

    # ---- checks ------------------------------------------------------------------------------
    def check_item(
        self, sender_id: str, text_or_id: str, *, booking_id: int | None = None
    ) -> Check:
        item = self.catalogue.items.get(text_or_id) or self.catalogue.find_item(text_or_id or "")
        bookings = self.bookings(sender_id)
        if bookings is not None and not bookings:
            return Check(
                message="我这边没有查到您接下来的住宿预订，附加服务需要挂在一个住宿订单上。"
                "如果您是用其他手机号或名字预订的，可以说“转人工”，顾问帮您查。",
                stop=True,
            )
        properties = self._properties(bookings, booking_id)
        first = properties[0] if properties else None
        # (the form's next question lists what can be booked: not repeated here)
        if item is None:
            return Check(message="抱歉，我没听出您想预订哪项服务。")
        offering = [p for p in properties if self.catalogue.offer(p, item.id)]
        if not offering:
            return Check(
                message=f"{self.property_name(first)}暂不提供{item.name}服务。如果一定需要，"
                "可以说“转人工”，顾问帮您问问其他办法。"
            )
        return Check(value=item.id)

    def check_when(
        self,
        sender_id: str,
        item_id: str,
        when: When,
        *,
        known_day: Optional[dt.date] = None,
        booking_id: int | None = None,
    ) -> Check:
        item = self.item(item_id)
        now = self.now()
        if when.has_time and not when.has_day and known_day is not None:
            when = when.combine(known_day)
        if not when.has_time:
            if when.at.date() < now.date():
                return Check(message=f"{describe(when.at, with_time=False, now=now)}已经过去了。")
            return Check(message=None, slots={"order_day": when.at.date().isoformat()})
        if when.at <= now:
            return Check(message=f"{describe(when.at, now=now)}已经过去了。")
        if item is None:
            return Check(value=when.at.isoformat(), slots={"order_day": when.at.date().isoformat()})
        bookings = self.bookings(sender_id)
        booking, offer, problem = self._place(item, when.at, bookings, booking_id)
        if problem:
            return Check(message=problem, slots={"order_day": None})
        if offer is not None and not offer.open_at(when.at.timetz()):
            return Check(
                message=f"{item.name}的服务时间是{offer.hours_text}，{when.at:%H:%M}不在服务时间内。",
                slots={"order_day": when.at.date().isoformat()},
            )
        return Check(
            value=when.at.isoformat(),
            slots={
                "order_day": when.at.date().isoformat(),
                "order_booking_id": booking.id if booking is not None else None,
            },
        )

    def _place(
        self, item: Item, at: dt.datetime, bookings: Optional[list], booking_id: Optional[int]
    ) -> tuple[Any, Optional[Offer], Optional[str]]:
        """The booking an order at `at` belongs to, its offer, or the reason there is none."""
        if bookings is None:  # CRM down: accept, the advisor checks the stay
            return None, None, None
        candidates = [b for b in bookings if booking_id in (None, b.id)] or bookings
        offered = [b for b in candidates if self.catalogue.offer(b.property_id, item.id)]
        for booking in offered:
            if _in_window(
                item.window, at.astimezone(CHINA_TZ), booking.check_in, booking.check_out
            ):
                return booking, self.catalogue.offer(booking.property_id, item.id), None
        if not offered:
            first = candidates[0]
            return (
                None,
                None,
                (
                    f"{self.property_name(first.property_id)}暂不提供{item.name}服务。"
                    f"可以预订的有：{self.menu(first.property_id)}。"
                ),
            )
        b = offered[0]
        stay = f"{_md(b.check_in)}入住、{_md(b.check_out)}退房"
        asked = describe(at, with_time=False, now=self.now())
        if item.window == "arrival":
            hint = f"{item.name}安排在到达当天（{_md(b.check_in)}）"
        elif item.window == "departure":
            hint = f"{item.name}安排在退房当天（{_md(b.check_out)}）"
        else:
            hint = "请选入住期间的日期"
        return (
            None,
            None,
            (
                f"您在{self.property_name(b.property_id)}的行程是{stay}，{asked}不在行程内，"
                f"{hint}。"
            ),
        )

    def check_party(
        self,
        item_id: Optional[str],
        size: Any,
        *,
        booking_id: int | None = None,
        sender_id: str | None = None,
    ) -> Check:
        try:
            n = int(size)
        except (TypeError, ValueError):
            return Check(message="没听清人数，告诉我几位就好，比如“2位”。")
        if n < 1:
            return Check(message="人数至少是1位哦。")
        item = self.item(item_id)
        offer = self._offer_for(item, booking_id, sender_id)
        limit = offer.max_party if offer is not None else None
        if limit is not None and n > limit:
            return Check(
                message=f"{item.name}每单最多{limit}位，{n}位需要顾问为您单独安排。"
                f"可以按{limit}位以内下单，或者说“转人工”请顾问帮您安排。"
            )
        if limit is None and n > 50:
            return Check(message=f"{n}位是团队规模了，需要顾问为您单独安排，请说“转人工”。")
        return Check(value=n)

    def _offer_for(
        self, item: Optional[Item], booking_id: Optional[int], sender_id: Optional[str]
    ) -> Optional[Offer]:
        if item is None:
            return None
        if booking_id is not None:
            try:
                booking = self.store.booking(int(booking_id))
            except StoreUnavailable:
                booking = None
            if booking is not None:
                return self.catalogue.offer(booking.property_id, item.id)
        bookings = self.bookings(sender_id) if sender_id else None
        for b in bookings or ():
            offer = self.catalogue.offer(b.property_id, item.id)
            if offer is not None:
                return offer
        # unknown stay: the strictest limit any property sets for the item
        limits = [o for p in self.catalogue.offers.values() for k, o in p.items() if k == item.id]
        return min(limits, key=lambda o: o.max_party or 10**6) if limits else None

    @staticmethod
    def check_flight(value: Any) -> Check:
        flight = parse_flight(str(value or ""))
        if flight is None:
            return Check(
                message="这个航班号好像不太对，航班号一般是两位字母或数字加3–4位数字（如 HU7081），"
                "高铁车次如 G1234。"
            )
        return Check(value=flight)

    # ---- confirm and create -------------------------------------------------------------------
    def _offer_of(self, draft: Draft) -> Optional[Offer]:
        item = self.item(draft.item_id)
        if item is None:
            return None
        if draft.booking_id is not None:
            try:
                booking = self.store.booking(int(draft.booking_id))
            except StoreUnavailable:
                booking = None
            if booking is not None:
                return self.catalogue.offer(booking.property_id, item.id)
        return self._offer_for(item, None, None)

    def _facts(self, draft: Draft) -> dict:
        item = self.item(draft.item_id)
        offer = self._offer_of(draft)
        at = draft.scheduled_at
        now = self.now()
        short = bool(offer and at and at - now < offer.lead_time)
        return {
            "item": item.name if item else draft.item_id,
            "when": describe(at, now=now) if at else "待定",
            "party": draft.party if item and "party" in item.needs else None,
            "flight": draft.flight_no if item and "flight" in item.needs else None,
            "notes": draft.notes,
            "price": offer.price if offer else None,
            "supplier": (offer.supplier if offer and offer.supplier else "酒店"),
            "note": offer.note if offer else None,
            "short_notice": short,
            "lead": _lead_text(offer.lead_time) if offer else "",
            "property_id": offer.property_id if offer else None,
        }

    def confirmation_question(self, draft: Draft, sender_id: str | None = None) -> str:
        facts = self._facts(draft)
        return render("confirm", same=self._same_day_orders(sender_id, draft), **facts)

    def _same_day_orders(self, sender_id: Optional[str], draft: Draft) -> list[dict]:
        """Open orders of the same item on the same day: the guest may not remember them."""
        item, at = self.item(draft.item_id), draft.scheduled_at
        if not sender_id or item is None or at is None:
            return []
        try:
            orders = self._open_orders(sender_id)
        except StoreUnavailable:
            return []
        day = at.astimezone(CHINA_TZ).date()
        return [
            {
                "id": o.id,
                "when": describe(o.scheduled_at, now=self.now()),
                "status": state.LABELS.get(o.status, o.status),
            }
            for o in orders
            if o.item == item.name
            and o.scheduled_at is not None
            and o.scheduled_at.astimezone(CHINA_TZ).date() == day
        ]

    def create(self, sender_id: str, draft: Draft) -> Reply:
        """Write the order (status requested, SLA class addon_order). Raises StoreUnavailable."""
        item = self.item(draft.item_id)
        if item is None:
            raise ValueError(f"unknown item {draft.item_id!r}")
        self.store.get_or_create_guest(sender_id)
        if draft.booking_id is None and draft.scheduled_at is not None:
            # taken while the CRM was down (replayed from the spool): place it on its stay now
            booking, _, _ = self._place(
                item,
                draft.scheduled_at,
                self.store.upcoming_bookings(sender_id, self.now().date()),
                None,
            )
            if booking is not None:
                draft = dataclasses.replace(draft, booking_id=booking.id)
        facts = self._facts(draft)
        order = self.store.create_order(
            sender_id,
            item=item.name,
            booking_id=draft.booking_id,
            property_id=facts["property_id"],
            scheduled_at=draft.scheduled_at,
            party_size=facts["party"],
            flight_no=facts["flight"],
            notes=draft.notes,
            status=state.REQUESTED,
            sla_class=ADDON_ORDER,
        )
        promise = self.terms.promise(ADDON_ORDER, facts["property_id"])
        text = render(
            "created",
            order_id=order.id,
            ack=promise.ack_text,
            resolve=promise.resolve_text,
            **{k: v for k, v in facts.items() if k not in ("property_id",)},
        )
        return Reply.of(text, record_ids={"order": order.id})

    def apply_spooled(self, entry: dict) -> None:
        if entry["op"] == OP_CANCEL:
            self.cancel(entry["sender_id"], entry["payload"].get("text", ""))
        else:
            self.create(entry["sender_id"], Draft.from_payload(entry["payload"]))

    # ---- status and cancel ----------------------------------------------------------------------
    def _open_orders(self, sender_id: str) -> list:
        now = self.now()
        return [
            o
            for o in self.store.orders(sender_id)
            if o.status in state.OPEN and (o.scheduled_at is None or o.scheduled_at >= now)
        ]

    def status(self, sender_id: str) -> Reply:
        now = self.now()
        orders = [
            o
            for o in self.store.orders(sender_id)
            if o.scheduled_at is None or o.scheduled_at >= now - dt.timedelta(days=1)
        ]
        rows = [
            {
                "id": o.id,
                "item": o.item,
                "when": describe(o.scheduled_at, now=now) if o.scheduled_at else None,
                "party": o.party_size,
                "status": state.LABELS.get(o.status, o.status),
            }
            for o in sorted(orders, key=lambda o: (o.scheduled_at or now))
        ]
        return Reply.of(render("status", orders=rows))

    def cancel(self, sender_id: str, text: str = "") -> Reply:
        """Cancel the open order the guest means (named item, order number, or the only one)."""
        open_orders = self._open_orders(sender_id)
        if not open_orders:
            return Reply.of("您目前没有可以取消的附加服务订单。")
        chosen = open_orders
        m = _ORDER_ID_RE.search(text or "")
        if m:
            wanted = int(m.group(1) or m.group(2))
            chosen = [o for o in open_orders if o.id == wanted]
        else:
            item = self.catalogue.find_item(text or "")
            if item is not None:
                chosen = [o for o in open_orders if o.item in (item.name, item.id)]
        if len(chosen) != 1:
            now = self.now()
            listing = "；".join(
                f"{o.item}（订单号 {o.id}{'，' + describe(o.scheduled_at, now=now) if o.scheduled_at else ''}）"
                for o in (chosen or open_orders)
            )
            return Reply.of(
                f"您有这些订单：{listing}。要取消哪一个？告诉我订单号就可以，比如“取消订单{(chosen or open_orders)[0].id}”。"
            )
        order = chosen[0]
        state.check_move(order.status, state.CANCELLED)
        self.store.set_order_status(order.id, state.CANCELLED)
        offer = None
        item = self.catalogue.item_by_name(order.item)
        if item is not None and order.property_id:
            offer = self.catalogue.offer(order.property_id, item.id)
        text = render(
            "cancelled",
            item=order.item,
            order_id=order.id,
            when=describe(order.scheduled_at, now=self.now()) if order.scheduled_at else None,
            supplier=(offer.supplier if offer and offer.supplier else "酒店"),
            other_open=len(open_orders) > 1,
        )
        return Reply.of(text, record_ids={"order": order.id})


# A pickup the evening before check-in is still an arrival (late flight, room from midnight).
ARRIVAL_EVE_FROM = dt.time(18, 0)


def _in_window(window: str, at: dt.datetime, check_in: dt.date, check_out: dt.date) -> bool:
    day = at.date()
    if window == "arrival":
        eve = day == check_in - dt.timedelta(days=1) and at.time() >= ARRIVAL_EVE_FROM
        return day == check_in or eve
    if window == "departure":
        return day == check_out
    return check_in <= day <= check_out


def _md(day: dt.date) -> str:
    return f"{day.month}月{day.day}日"


def _lead_text(lead: dt.timedelta) -> str:
    hours = lead.total_seconds() / 3600
    if hours >= 1 and hours == int(hours):
        return f"{int(hours)}小时"
    return f"{int(lead.total_seconds() // 60)}分钟"

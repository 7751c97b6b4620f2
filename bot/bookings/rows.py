"""One booking as a PMS/OTA export or a PMS push gives it, checked and reduced to our values.

Shared by the file importer (`bot.bookings.importer`) and the sync endpoint
(`bot.bookings.sync`), so a row is accepted or refused for the same reasons either way.

Columns (header names in Chinese or English, case and spaces ignored; see README "Importing
bookings"): required 酒店代码/property_code, 订单号/confirmation_no, 姓名/guest_name,
手机/phone, 入住日期/check_in, 离店日期/check_out; optional 房型/room_type, 人数/party_size,
状态/status, 渠道/channel, 金额/amount, 会员等级/tier, 生日/birthday, 备注/notes,
版本/version (or 更新时间/updated_at).

`parse_row(raw, kb)` returns a `BookingRow` or raises `RowError(reason)` with a reason a hotel
person can act on (in English: it is read by staff and scripts, like the CLI's other messages).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from bot.bookings.phone import normalize_phone
from bot.crm.models import TIERS
from bot.knowledge.kb import KnowledgeBase

# canonical field -> the header names accepted for it (compared after `_header_key`).
HEADERS: dict[str, tuple[str, ...]] = {
    "property_code": (
        "酒店代码",
        "酒店编码",
        "酒店编号",
        "门店代码",
        "property_code",
        "hotel_code",
        "property",
    ),
    "confirmation_no": (
        "订单号",
        "订单编号",
        "确认号",
        "预订号",
        "confirmation_no",
        "confirmation_number",
        "booking_no",
        "reservation_no",
    ),
    "guest_name": ("姓名", "客人姓名", "入住人", "宾客姓名", "guest_name", "name"),
    "phone": ("手机", "手机号", "手机号码", "电话", "联系电话", "phone", "mobile"),
    "check_in": ("入住日期", "入住", "到店日期", "check_in", "checkin", "arrival"),
    "check_out": ("离店日期", "离店", "退房日期", "check_out", "checkout", "departure"),
    "room_type": ("房型", "房间类型", "room_type"),
    "party_size": ("人数", "入住人数", "party_size", "guests"),
    "status": ("状态", "订单状态", "status"),
    "channel": ("渠道", "预订渠道", "来源", "channel", "source"),
    "amount": ("金额", "订单金额", "房费", "总价", "amount", "total"),
    "tier": ("会员等级", "等级", "tier", "member_tier"),
    "birthday": ("生日", "出生日期", "birthday", "date_of_birth"),
    "notes": ("备注", "notes", "remark", "remarks"),
    "version": ("版本", "更新时间", "version", "updated_at"),
}
REQUIRED = ("property_code", "confirmation_no", "guest_name", "phone", "check_in", "check_out")

STATUSES = {
    "已确认": "booked",
    "确认": "booked",
    "预订": "booked",
    "已预订": "booked",
    "confirmed": "booked",
    "booked": "booked",
    "已取消": "cancelled",
    "取消": "cancelled",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "已入住": "checked_in",
    "在住": "checked_in",
    "入住": "checked_in",
    "checked_in": "checked_in",
    "已离店": "completed",
    "离店": "completed",
    "已退房": "completed",
    "checked_out": "completed",
    "completed": "completed",
}
TIER_NAMES = {
    **{t: t for t in TIERS},
    "normal": "普通",
    "member": "普通",
    "silver": "银卡",
    "gold": "金卡",
    "platinum": "铂金",
    "diamond": "钻石",
    "白金": "铂金",
}

_DATE_PATTERNS = (
    re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})"),
    re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})"),
    re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2})"),
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?"),
)
_TIME_TAIL = re.compile(r"[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")  # "2026-12-05 00:00:00"
MAX_STAY_NIGHTS = 365
MAX_PARTY = 50
_LIMITS = {
    "confirmation_no": 32,
    "guest_name": 64,
    "room_type": 32,
    "channel": 32,
    "notes": 2000,
    "version": 64,
}


class RowError(ValueError):
    """This row cannot be used; the message says why."""


@dataclass(frozen=True)
class BookingRow:
    property_id: str
    city: str
    confirmation_no: str
    guest_name: str
    phone: str  # normalised 11-digit mobile
    check_in: dt.date
    check_out: dt.date
    room_type: str | None
    party_size: int
    status: str  # one of bot.crm.models.BOOKING_STATUSES
    channel: str | None
    amount: Decimal | None
    tier: str | None
    birthday: dt.date | None
    notes: str | None
    version: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.property_id, self.confirmation_no)

    def content_hash(self) -> str:
        """A digest of everything but `version`: equal digests mean nothing to update."""
        values = [getattr(self, f.name) for f in _HASHED_FIELDS]
        text = "\x1f".join("" if v is None else str(v) for v in values)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


_HASHED_FIELDS = tuple(f for f in fields(BookingRow) if f.name != "version")


def _header_key(text: Any) -> str:
    return re.sub(r"[\s_\-（）()*]", "", unicodedata.normalize("NFKC", str(text or "")).lower())


_HEADER_INDEX = {
    _header_key(alias): field for field, aliases in HEADERS.items() for alias in aliases
}


def map_headers(headers: list[Any]) -> dict[int, str]:
    """Column index -> canonical field for the header row; raises RowError when a required
    column is missing or a field appears twice (the file as a whole cannot be read)."""
    mapping: dict[int, str] = {}
    for index, header in enumerate(headers):
        field = _HEADER_INDEX.get(_header_key(header))
        if field is None:
            continue  # extra columns an export carries are ignored
        if field in mapping.values():
            raise RowError(f"two columns mean {field} (the second is {header!r})")
        mapping[index] = field
    missing = [f for f in REQUIRED if f not in mapping.values()]
    if missing:
        names = ", ".join(f"{HEADERS[f][0]}/{f}" for f in missing)
        raise RowError(f"missing required column(s): {names}")
    return mapping


def _text(value: Any, *, normalize: bool = True) -> str | None:
    """The cell as text, or None when empty. Codes, numbers and dates are NFKC-normalised
    (full-width digits and letters); free text (names, notes) keeps its punctuation."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # Excel numbers: 12345.0 -> "12345"
        value = int(value)
    text = str(value).strip()
    if normalize:
        text = unicodedata.normalize("NFKC", text)
    return text or None


def _free(value: Any) -> str | None:
    return _text(value, normalize=False)


def parse_date(value: Any, field: str) -> dt.date:
    """2026-12-05, 2026/12/5, 2026.12.5, 2026年12月5日 (a time after it is ignored), or a date
    an XLSX cell already holds."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = _text(value)
    if text is None:
        raise RowError(f"{field} is empty")
    day = _TIME_TAIL.sub("", text)
    for pattern in _DATE_PATTERNS:
        found = pattern.fullmatch(day)
        if found:
            try:
                return dt.date(*(int(g) for g in found.groups()))
            except ValueError:
                break
    raise RowError(f"{field} {text!r} is not a date (use 2026-12-05, 2026/12/5 or 2026年12月5日)")


def _bounded(field: str, value: str | None) -> str | None:
    if value is not None and len(value) > _LIMITS[field]:
        raise RowError(f"{field} is longer than {_LIMITS[field]} characters")
    return value


def parse_row(raw: Mapping[str, Any], kb: KnowledgeBase) -> BookingRow:
    """Check one row (canonical field -> cell value) and return it in our terms."""
    values = {field: raw.get(field) for field in HEADERS}
    for field in REQUIRED:
        if _text(values[field]) is None and not isinstance(values[field], dt.date):
            raise RowError(f"{field} is missing")
    code = _text(values["property_code"])
    prop = kb.property_by_code(code)
    if prop is None:
        raise RowError(f"unknown property {code!r}")
    phone = normalize_phone(values["phone"])
    if phone is None:
        raise RowError(f"phone {_text(values['phone'])!r} is not a mainland mobile number")
    check_in = parse_date(values["check_in"], "check_in")
    check_out = parse_date(values["check_out"], "check_out")
    if check_out <= check_in:
        raise RowError(f"check_out {check_out} is not after check_in {check_in}")
    if (check_out - check_in).days > MAX_STAY_NIGHTS:
        raise RowError(f"a stay of {(check_out - check_in).days} nights is not plausible")

    status_text = _text(values["status"]) or "已确认"
    status = STATUSES.get(status_text.lower())
    if status is None:
        raise RowError(f"unknown status {status_text!r}")
    tier_text = _text(values["tier"])
    tier = TIER_NAMES.get(tier_text.lower()) if tier_text else None
    if tier_text and tier is None:
        raise RowError(f"unknown tier {tier_text!r} (use {'/'.join(TIERS)})")

    party_text = _text(values["party_size"])
    try:
        party_size = int(Decimal(party_text)) if party_text else 1
    except (InvalidOperation, ValueError):
        raise RowError(f"party_size {party_text!r} is not a number") from None
    if not 1 <= party_size <= MAX_PARTY:
        raise RowError(f"party_size {party_size} is outside 1-{MAX_PARTY}")

    amount_text = _text(values["amount"])
    amount = None
    if amount_text:
        try:
            amount = Decimal(re.sub(r"[¥￥,，元\s]|CNY|RMB", "", amount_text)).quantize(
                Decimal("0.01")
            )
        except InvalidOperation:
            raise RowError(f"amount {amount_text!r} is not a number") from None
        if amount < 0 or amount >= Decimal("1e11"):
            raise RowError(f"amount {amount_text!r} is out of range")

    birthday = None
    if _text(values["birthday"]) or isinstance(values["birthday"], dt.date):
        birthday = parse_date(values["birthday"], "birthday")
        if not dt.date(1900, 1, 1) <= birthday <= dt.date.today():
            raise RowError(f"birthday {birthday} is not plausible")

    return BookingRow(
        property_id=prop.id,
        city=prop.city,
        confirmation_no=_bounded("confirmation_no", _text(values["confirmation_no"])),
        guest_name=_bounded("guest_name", _free(values["guest_name"])),
        phone=phone,
        check_in=check_in,
        check_out=check_out,
        room_type=_bounded("room_type", _free(values["room_type"])),
        party_size=party_size,
        status=status,
        channel=_bounded("channel", _free(values["channel"])),
        amount=amount,
        tier=tier,
        birthday=birthday,
        notes=_bounded("notes", _free(values["notes"])),
        version=_bounded("version", _text(values["version"])),
    )

"""The guest's stay, as the answer functions need it (built by the caller from a CRM booking).

Why a separate small type: the answers must not depend on the CRM's models, so the pre-trip
service copies the few booking fields they use into this plain dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple, Union


class Addon(NamedTuple):
    """An add-on already ordered for the stay; a plain (item, scheduled_at, status) tuple works too."""

    item: str  # "接机", "潜水", "蜜月布置" ...
    scheduled_at: Union[datetime, date, str, None]
    status: str  # "pending", "confirmed", ... or Chinese


@dataclass(frozen=True)
class Trip:
    property_id: str
    city: str
    check_in: date
    check_out: date
    room_type: str | None = None
    purpose: str | None = None  # 商务/度假/会议/亲子/蜜月/纪念日 (or English)
    party_size: int | None = None
    addons: list = field(default_factory=list)  # of Addon or (item, scheduled_at, status)

    @property
    def nights(self) -> int:
        return max((self.check_out - self.check_in).days, 0)

    def stay_days(self) -> list[date]:
        """Every day the guest is there, check-out morning included (it has weather too)."""
        return [self.check_in + timedelta(days=i) for i in range(self.nights + 1)]

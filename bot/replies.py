"""The reply the guest-side services hand to the actions, and the texts several flows share.

`Reply` has the shape `actions._common.say` expects (texts, buttons), plus `slots`: values the
action should set on the tracker (e.g. the complaint's severity, which picks the next rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    texts: tuple[str, ...]
    buttons: tuple[dict, ...] = ()
    slots: dict[str, Any] = field(default_factory=dict)
    record_ids: dict[str, int] = field(default_factory=dict)  # what was written, for tests/logs

    @classmethod
    def of(cls, *texts: str, **kwargs: Any) -> "Reply":
        return cls(tuple(t for t in texts if t), **kwargs)


# Said when the CRM cannot be reached and what the guest asked for was queued (bot.spool):
# honest (we did not do it yet), and it promises only what the replay and the advisors deliver.
QUEUED_TEXT = (
    "抱歉，系统这会儿有点忙，您刚才说的我已经完整记下了，系统恢复后会第一时间处理，"
    "并由顾问跟进告诉您结果。着急的话可以直接拨打酒店前台电话。"
)

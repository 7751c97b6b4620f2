"""The order life cycle: requested -> confirmed -> done, and cancelled from either open state.

requested  the guest asked; the supplier/advisor has not confirmed yet (the SLA clock runs)
confirmed  the supplier/advisor confirmed it can be done
done       it happened
cancelled  the guest or the hotel called it off (kept for history)
"""

from __future__ import annotations

REQUESTED, CONFIRMED, DONE, CANCELLED = "requested", "confirmed", "done", "cancelled"
STATUSES = (REQUESTED, CONFIRMED, DONE, CANCELLED)
OPEN = (REQUESTED, CONFIRMED)

TRANSITIONS: dict[str, frozenset[str]] = {
    REQUESTED: frozenset({CONFIRMED, CANCELLED}),
    CONFIRMED: frozenset({DONE, CANCELLED}),
    DONE: frozenset(),
    CANCELLED: frozenset(),
}

# What the guest reads for each status.
LABELS = {
    REQUESTED: "已提交，等待确认",
    CONFIRMED: "已确认",
    DONE: "已完成",
    CANCELLED: "已取消",
}


class InvalidTransition(ValueError):
    pass


def can_move(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def check_move(current: str, new: str) -> None:
    if not can_move(current, new):
        raise InvalidTransition(f"an order cannot go from {current!r} to {new!r}")

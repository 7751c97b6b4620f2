"""What the guest is told about "who acts, and by when", read from the SLA policy.

The paging module (`bot.paging.policy`) owns the policy file and the clocks; the conversation
flows only need the promise: the class's first-response and resolution durations at a property,
and whether a person is available right now (service hours). This adapter reads the same file
through `bot.paging.policy.load_policy` (live: an edit takes effect without a restart).

There is no built-in table to fall back on: a promise the worker would not enforce is worse than
no start. A policy that cannot be loaded raises `SlaPolicyUnavailable` naming the file, from
`SlaTerms.check()` at a process's start (`build_flows`, the action server) and from any later
first use.

The SLA class names the flows write on records (the paging policy requires the same names):
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bot.core.errors import DataError

log = logging.getLogger(__name__)

COMPLAINT_ROUTINE = "complaint_routine"
COMPLAINT_MAJOR = "complaint_major"
ADDON_ORDER = "addon_order"
HUMAN_REQUEST = "human_request"
DATA_DELETION = "data_deletion"
CLASSES = (COMPLAINT_ROUTINE, COMPLAINT_MAJOR, ADDON_ORDER, HUMAN_REQUEST, DATA_DELETION)


class SlaPolicyUnavailable(DataError):
    """The SLA policy (SLA_POLICY_FILE) cannot be loaded, or lacks a class the flows promise."""


@dataclass(frozen=True)
class Promise:
    sla_class: str
    ack_within: Optional[dt.timedelta]
    resolve_within: Optional[dt.timedelta]
    in_service_hours: bool = True
    service_hours: Optional[str] = None  # "09:00-22:00", for "outside service hours" replies
    next_opening: Optional[dt.datetime] = None

    @property
    def ack_text(self) -> Optional[str]:
        return format_duration(self.ack_within) if self.ack_within else None

    @property
    def resolve_text(self) -> Optional[str]:
        return format_duration(self.resolve_within) if self.resolve_within else None


def format_duration(value: dt.timedelta) -> str:
    from bot.paging.policy import format_duration as paging_format

    return paging_format(value)


class SlaTerms:
    """Promises per class and property; `policy_file=None` means the configured SLA_POLICY_FILE."""

    def __init__(self, policy_file: Path | str | None = None):
        self._file = policy_file
        self._policy = None

    def _load(self):
        if self._policy is None:
            from bot.datafiles import live_policy
            from bot.paging.policy import PolicyError
            from bot.settings import get_settings

            path = str(self._file or get_settings().sla_policy_file)
            try:
                # live: an edited policy file changes the promises without a restart (a bad
                # edit is refused there and the last good version stays)
                self._policy = live_policy(path)
            except PolicyError as exc:
                raise SlaPolicyUnavailable(
                    f"SLA_POLICY_FILE {path}: the guest's promises come from it and it does not "
                    f"load: {exc} (`concierge data check` lists the problems)"
                ) from exc
        return self._policy.current

    def check(self) -> "SlaTerms":
        """Load the policy now and make sure it has every class the flows promise: a process
        calls this at start, so a broken policy stops it there instead of at a guest's turn."""
        policy = self._load()
        missing = [c for c in CLASSES if not policy.has_class(c)]
        if missing:
            raise SlaPolicyUnavailable(
                f"SLA policy {self._file or 'SLA_POLICY_FILE'} has no "
                f"class {', '.join(missing)}"
            )
        return self

    def promise(
        self, sla_class: str, property_id: str | None = None, now: dt.datetime | None = None
    ) -> Promise:
        now = now or dt.datetime.now(dt.timezone.utc)
        policy = self._load()
        if not policy.has_class(sla_class):
            raise SlaPolicyUnavailable(f"SLA policy has no class {sla_class!r}")
        cls = policy.sla_class(sla_class, property_id)
        prop = policy.property(property_id)
        in_hours, hours_text, opening = True, None, None
        try:
            from bot.paging import roster

            in_hours = roster.in_service_hours(policy, prop, now)
            hours_text = roster.service_hours_text(prop)
            if not in_hours:
                opening = roster.next_service_opening(policy, prop, now)
        except Exception as exc:  # pragma: no cover - roster ships with paging
            log.warning("service hours unknown: %s", exc)
        return Promise(sla_class, cls.ack_within, cls.resolve_within, in_hours, hours_text, opening)


@functools.lru_cache(maxsize=1)
def default_terms() -> SlaTerms:
    return SlaTerms()

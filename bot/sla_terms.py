"""What the guest is told about "who acts, and by when", read from the SLA policy.

The paging module (`bot.paging.policy`) owns the policy file and the clocks; the conversation
flows only need the promise: the class's first-response and resolution durations at a property,
and whether a person is available right now (service hours). This adapter reads the same file
through `bot.paging.policy.load_policy`; when that module or the file is not there (a developer
box mid-build, a unit test) it falls back to SPEC.md's table, so a reply never invents a number
that is in neither.

The SLA class names the flows write on records (the paging policy requires the same names):
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

COMPLAINT_ROUTINE = "complaint_routine"
COMPLAINT_MAJOR = "complaint_major"
ADDON_ORDER = "addon_order"
HUMAN_REQUEST = "human_request"
DATA_DELETION = "data_deletion"
CLASSES = (COMPLAINT_ROUTINE, COMPLAINT_MAJOR, ADDON_ORDER, HUMAN_REQUEST, DATA_DELETION)

# SPEC.md "SLAs": first response, resolution (None: no resolution clock).
_SPEC_DEFAULTS = {
    COMPLAINT_ROUTINE: (dt.timedelta(minutes=10), dt.timedelta(hours=2)),
    COMPLAINT_MAJOR: (dt.timedelta(minutes=30), None),
    ADDON_ORDER: (dt.timedelta(minutes=10), dt.timedelta(hours=1)),
    HUMAN_REQUEST: (dt.timedelta(minutes=5), None),
    DATA_DELETION: (None, None),
}


@dataclass(frozen=True)
class Promise:
    sla_class: str
    ack_within: Optional[dt.timedelta]
    resolve_within: Optional[dt.timedelta]
    in_service_hours: bool = True
    service_hours: Optional[str] = None     # "09:00-22:00", for "outside service hours" replies
    next_opening: Optional[dt.datetime] = None

    @property
    def ack_text(self) -> Optional[str]:
        return format_duration(self.ack_within) if self.ack_within else None

    @property
    def resolve_text(self) -> Optional[str]:
        return format_duration(self.resolve_within) if self.resolve_within else None


def format_duration(value: dt.timedelta) -> str:
    try:
        from bot.paging.policy import format_duration as paging_format
        return paging_format(value)
    except ImportError:  # pragma: no cover - paging ships with the project
        minutes = int(value.total_seconds() // 60)
        hours, minutes = divmod(minutes, 60)
        return (f"{hours}小时" if hours else "") + (f"{minutes}分钟" if minutes else "") or "1分钟"


class SlaTerms:
    """Promises per class and property; `policy_file=None` means the configured SLA_POLICY_FILE."""

    def __init__(self, policy_file: Path | str | None = None):
        self._file = policy_file
        self._policy = None
        self._loaded = False

    def _load(self):
        if not self._loaded:
            self._loaded = True
            try:
                from bot.datafiles import live_policy
                from bot.settings import get_settings

                # live: an edited policy file changes the promises without a restart
                self._policy = live_policy(str(self._file or get_settings().sla_policy_file))
            except Exception as exc:  # ImportError, PolicyError: SPEC defaults, said in the log
                log.warning("SLA policy not loaded (%s); using SPEC.md defaults", exc)
                self._policy = None
        return self._policy.current if self._policy is not None else None

    def promise(self, sla_class: str, property_id: str | None = None,
                now: dt.datetime | None = None) -> Promise:
        now = now or dt.datetime.now(dt.timezone.utc)
        policy = self._load()
        if policy is not None and policy.has_class(sla_class):
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
            return Promise(sla_class, cls.ack_within, cls.resolve_within, in_hours, hours_text,
                           opening)
        ack, resolve = _SPEC_DEFAULTS.get(sla_class, (None, None))
        return Promise(sla_class, ack, resolve)


@functools.lru_cache(maxsize=1)
def default_terms() -> SlaTerms:
    return SlaTerms()

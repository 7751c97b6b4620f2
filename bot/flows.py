"""The guest-side flows that write to the CRM (issue 4): preferences, add-on orders, complaints,
praise, a human on request, privacy -- built together over one store, plus the spool that keeps
their writes when the database is down.

`bot.services.Services.flows` holds one `Flows` per process; tests build their own with
`build_flows(store, ...)`. Nothing connects at import time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from bot.complaints.praise import OP_PRAISE, PraiseService
from bot.complaints.service import OP_ENRICH, OP_OPEN, ComplaintService
from bot.crm.store import CRMStore
from bot.handoff import OP_REQUEST, HandoffService
from bot.orders.catalogue import Catalogue
from bot.orders.service import OP_CANCEL, OP_CREATE, OrderService
from bot.orders.when import china_now
from bot.preferences.mirror import NoTagMirror, TagMirror
from bot.preferences.service import OP_RECORD, PreferenceService
from bot.privacy import OP_DELETION, OP_UNSUBSCRIBE, PrivacyService
from bot.settings import get_settings
from bot.sla_terms import SlaTerms
from bot.spool import DEFAULT_SPOOL_FILE, Spool, make_spool, new_entry, replay

# Where the file spool lives when REDIS_URL is unset (tests point it at their tmp dir; read
# through bot.core.settings).
SPOOL_FILE_ENV = "CONCIERGE_SPOOL_FILE"


@dataclass
class Flows:
    store: CRMStore
    spool: Spool
    preferences: PreferenceService
    orders: OrderService
    complaints: ComplaintService
    handoff: HandoffService
    privacy: PrivacyService
    praise: PraiseService
    terms: SlaTerms = field(default_factory=SlaTerms)

    def replay_handlers(self) -> dict[str, Callable[[dict], Any]]:
        return {
            OP_RECORD: self.preferences.apply_spooled,
            OP_CREATE: self.orders.apply_spooled,
            OP_CANCEL: self.orders.apply_spooled,
            OP_OPEN: self.complaints.apply_spooled,
            OP_ENRICH: self.complaints.apply_spooled,
            OP_REQUEST: self.handoff.apply_spooled,
            OP_UNSUBSCRIBE: self.privacy.apply_spooled,
            OP_DELETION: self.privacy.apply_spooled,
            OP_PRAISE: self.praise.apply_spooled,
        }

    def queue(self, op: str, sender_id: str, **payload: Any) -> dict:
        """Keep a write for later (the store was unavailable)."""
        entry = new_entry(op, sender_id, payload)
        self.spool.append(entry)
        return entry

    def replay_pending(self) -> int:
        """Apply what was queued while the store was down; cheap when nothing is queued."""
        if len(self.spool) == 0:
            return 0
        return replay(self.spool, self.replay_handlers())


def build_flows(
    store: CRMStore,
    *,
    kb: Any = None,
    catalogue: Optional[Catalogue] = None,
    terms: Optional[SlaTerms] = None,
    spool: Optional[Spool] = None,
    mirror: Optional[TagMirror] = None,
    redis_url: Optional[str] = None,
    spool_file: Path | str | None = None,
    now: Callable[[], dt.datetime] = china_now,
) -> Flows:
    # The promises come from the SLA policy only: a policy that does not load stops the build
    # (and so the process) here, not at a guest's first complaint.
    terms = (terms or SlaTerms()).check()
    spool = spool or make_spool(
        redis_url, spool_file or get_settings().spool_file or DEFAULT_SPOOL_FILE
    )
    handoff = HandoffService(store, kb=kb, terms=terms, now=now)
    return Flows(
        store=store,
        spool=spool,
        terms=terms,
        preferences=PreferenceService(store, mirror=mirror or NoTagMirror(), now=now),
        orders=OrderService(
            store, catalogue=catalogue or Catalogue.default(), kb=kb, terms=terms, now=now
        ),
        complaints=ComplaintService(store, handoff, kb=kb, terms=terms, now=now),
        handoff=handoff,
        privacy=PrivacyService(store, terms=terms, now=now),
        praise=PraiseService(store, now=now),
    )

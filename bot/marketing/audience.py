"""Who a marketing message may go to, and why the others may not: used by the preview (dry-run)
and, again at send time, by the send path itself, so consent, opt-outs and caps are never the
caller's job.

Reasons a segment member is left out, checked in this order:
- `no_consent`: no marketing consent on record, or the guest opted out (退订) since;
- `no_wecom_identity`: no WeCom id for the surface (external_userid; 微信客服 id for kf);
- `not_a_contact`: no advisor holds the guest as a WeCom contact (mass sends are advisor tasks);
- `outside_48h_window`: 微信客服 only: the guest has not written in the last 48 hours;
- `over_cap`: the guest already got the policy's number of mass messages this period;
- `quiet_hours`: it would go out in the quiet hours (the send waits until they end).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Optional

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.marketing.facts import GuestFacts
from bot.marketing.models import MassSend
from bot.marketing.policy import MarketingPolicy

REASONS = (
    "no_consent",
    "no_wecom_identity",
    "not_a_contact",
    "outside_48h_window",
    "over_cap",
    "quiet_hours",
)
KF_WINDOW = dt.timedelta(hours=48)


def guest_target(guest_id: int) -> str:
    return f"guest:{guest_id}"


def group_target(chat_id: str) -> str:
    return f"group:{chat_id}"


def cap_counts(
    engine: Engine,
    policy: MarketingPolicy,
    now: dt.datetime,
    targets: Optional[Iterable[str]] = None,
    *,
    conn=None,
) -> Counter:
    """Mass messages each target got in the cap period `now` is in."""
    start, end = policy.cap.window(now)
    stmt = (
        select(MassSend.target, func.count())
        .where(MassSend.sent_at >= start, MassSend.sent_at < end)
        .group_by(MassSend.target)
    )
    wanted = None if targets is None else set(targets)
    if wanted is not None and len(wanted) <= 500:
        stmt = stmt.where(MassSend.target.in_(wanted))
    counts: Counter = Counter()
    if conn is not None:
        rows = conn.execute(stmt)
    else:
        with engine.connect() as c:
            rows = list(c.execute(stmt))
    for target, count in rows:
        if wanted is None or target in wanted:
            counts[target] = count
    return counts


def kf_windows(engine: Engine, now: dt.datetime) -> set[tuple[str, str]]:
    """(open_kfid, external_userid) of guests who wrote to 微信客服 in the last 48 hours."""
    from bot.wecom.models import KfQuota

    with engine.connect() as conn:
        rows = conn.execute(
            select(KfQuota.open_kfid, KfQuota.external_userid).where(
                KfQuota.last_guest_msg_at >= now - KF_WINDOW
            )
        )
        return {(r[0], r[1]) for r in rows}


@dataclass
class Audience:
    eligible: list[GuestFacts] = field(default_factory=list)
    left_out: list[tuple[GuestFacts, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counter = Counter(reason for _, reason in self.left_out)
        return {reason: counter[reason] for reason in REASONS if counter[reason]}


def audience(
    members: Iterable[GuestFacts],
    *,
    surface: str,
    policy: MarketingPolicy,
    now: dt.datetime,
    caps: Counter,
    kf_open: Optional[set] = None,
    marketing: bool = True,
) -> Audience:
    """Split segment members into those who may get the message now and those left out (why).
    `marketing=False` (service messages) skips consent and the cap, never the quiet hours."""
    result = Audience()
    limit = policy.cap.limit_at(now)
    quiet = policy.in_quiet_hours(now)
    for f in members:
        if marketing and f.marketing_consent is not True:
            reason = "no_consent"
        elif surface == "kf" and not (f.kf_external_userid and f.kf_open_kfid):
            reason = "no_wecom_identity"
        elif surface == "single" and not f.external_userid:
            reason = "no_wecom_identity"
        elif surface == "single" and not f.owner_userid:
            reason = "not_a_contact"
        elif surface == "kf" and (f.kf_open_kfid, f.kf_external_userid) not in (kf_open or set()):
            reason = "outside_48h_window"
        elif marketing and caps[guest_target(f.id)] >= limit:
            reason = "over_cap"
        elif quiet:
            reason = "quiet_hours"
        else:
            result.eligible.append(f)
            continue
        result.left_out.append((f, reason))
    return result

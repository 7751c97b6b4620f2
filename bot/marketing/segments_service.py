"""Segment counts and listings for the CLI and the console (`SegmentService`).

A segment comes as a mapping, a YAML file, or a name: `data/marketing/segments/NAME.yml`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy.engine import Engine

from bot.crm.store import CHINA_TZ
from bot.marketing.facts import count_guests, load_facts
from bot.marketing.policy import MarketingPolicy
from bot.marketing.segments import Segment, SegmentError, describe, load_segment_file, parse_segment
from bot.settings import PROJECT_ROOT

SEGMENTS_DIR = PROJECT_ROOT / "data" / "marketing" / "segments"


def resolve_segment(ref: Any) -> Segment:
    """A mapping, a path to a YAML file, or the name of one in data/marketing/segments/."""
    if isinstance(ref, dict):
        return parse_segment(ref)
    path = Path(str(ref))
    if not path.exists():
        named = SEGMENTS_DIR / f"{ref}.yml"
        if not named.exists():
            known = (
                sorted(p.stem for p in SEGMENTS_DIR.glob("*.yml")) if SEGMENTS_DIR.exists() else []
            )
            raise SegmentError(
                f"no segment file or name {ref!r}; named segments: "
                f"{', '.join(known) or '(none)'}"
            )
        path = named
    return load_segment_file(path)


class SegmentService:
    def __init__(
        self,
        engine: Engine,
        policy: MarketingPolicy,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ):
        self.engine = engine
        self.policy = policy
        self.clock = clock

    def _today(self, today: Optional[dt.date]) -> dt.date:
        return today or self.clock().astimezone(CHINA_TZ).date()

    def count(self, ref: Any, *, today: Optional[dt.date] = None) -> dict:
        """Members, total guests, and how many each rule excluded."""
        segment = resolve_segment(ref)
        day = self._today(today)
        # Only what the rules read, and only the tiers a member can have: a count on tier and
        # consent reads no bookings and skips the other tiers' guests in SQL.
        facts = load_facts(self.engine, day, needs=segment.needs, tiers=segment.tiers)
        total = count_guests(self.engine) if segment.tiers is not None else len(facts)
        excluded: Counter = Counter()
        if total > len(facts):
            excluded[segment.tier_rule()] = total - len(facts)
        members = 0
        for f in facts:
            failed = segment.evaluate(f, day, self.policy)
            if failed:
                excluded.update(failed)
            else:
                members += 1
        return {
            "segment": segment.spec,
            "today": day.isoformat(),
            "count": members,
            "guests": total,
            "excluded_by_rule": dict(excluded),
        }

    def list(
        self,
        ref: Any,
        *,
        limit: int = 100,
        include_outside: bool = False,
        today: Optional[dt.date] = None,
    ) -> dict:
        """Members with their derived facts (and, if asked, non-members with the failed rules)."""
        segment = resolve_segment(ref)
        day = self._today(today)
        rows, outside = [], []
        for f in load_facts(self.engine, day):
            failed = segment.evaluate(f, day, self.policy)
            if not failed and len(rows) < limit:
                rows.append(describe(f, day, self.policy))
            elif failed and include_outside and len(outside) < limit:
                outside.append({**describe(f, day, self.policy), "failed_rules": failed})
        result = {"segment": segment.spec, "today": day.isoformat(), "members": rows}
        if include_outside:
            result["outside"] = outside
        return result

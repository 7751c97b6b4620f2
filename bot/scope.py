"""What the concierge cannot do, said politely (issue 17): the near-domain categories of
data/scope/near_domain.yml (taxi apps, food delivery, other hotels, tickets ...), the cue that
recognises each and the "I can't, but ..." reply. Used by the NLU guard (bot/nlu/scope_guard.py)
and the out-of-scope action (actions/scope.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, Optional, Tuple

from bot.settings import PROJECT_ROOT
from bot.core.data import read_yaml

NEAR_DOMAIN_FILE = PROJECT_ROOT / "data" / "scope" / "near_domain.yml"
OUT_OF_SCOPE = "out_of_scope"
NLU_FALLBACK = "nlu_fallback"
# One wording of the human offer for every category.
HUMAN_OFFER = "需要的话回复“转人工”，我请人工顾问帮您想办法。"


class NearDomainError(ValueError):
    """The near-domain file is malformed; the message says where."""


@dataclass(frozen=True)
class NearDomain:
    cues: Tuple[Tuple[str, str], ...]  # (cue, category), longest cue first
    replies: Dict[str, str]
    keep_if: FrozenSet[str]
    max_confidence: float
    default_reply: str

    def category(self, text: str) -> Optional[str]:
        """The category of the first (longest) cue in a normalised text, or None."""
        low = (text or "").lower()
        for cue, cat in self.cues:
            if cue in low:
                return cat
        return None

    def overrules(self, intent: Optional[str], confidence: float) -> bool:
        """Whether a near-domain cue turns the classifier's decision into out_of_scope."""
        if intent in (OUT_OF_SCOPE, NLU_FALLBACK, None):
            return True
        if intent in self.keep_if:
            return False
        return confidence < self.max_confidence

    def reply(self, category: Optional[str]) -> str:
        """The near-domain answer of the category with the human offer, else the generic one."""
        text = self.replies.get(category or "")
        return f"{text}{HUMAN_OFFER}" if text else self.default_reply


def parse_near_domain(data: dict, source: str = "<near_domain>") -> NearDomain:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("categories"), dict)
        or not data["categories"]
    ):
        raise NearDomainError(f"{source}: expected a mapping with non-empty 'categories'")
    cues, replies = [], {}
    for key, cat in data["categories"].items():
        if not isinstance(cat, dict):
            raise NearDomainError(f"{source}: categories.{key} must be a mapping")
        words, reply = cat.get("cues"), cat.get("reply")
        if (
            not isinstance(words, list)
            or not words
            or not all(isinstance(w, str) and w.strip() for w in words)
        ):
            raise NearDomainError(
                f"{source}: categories.{key}.cues must be a non-empty list of words"
            )
        if not isinstance(reply, str) or not reply.strip():
            raise NearDomainError(f"{source}: categories.{key}.reply must be a text")
        cues += [(w.strip().lower(), str(key)) for w in words]
        replies[str(key)] = reply.strip()
    keep = data.get("keep_if") or []
    if not isinstance(keep, list):
        raise NearDomainError(f"{source}: keep_if must be a list of intents")
    try:
        max_conf = float(data.get("max_confidence", 0.9))
    except (TypeError, ValueError):
        raise NearDomainError(f"{source}: max_confidence must be a number") from None
    default = data.get("default_reply")
    if not isinstance(default, str) or not default.strip():
        raise NearDomainError(f"{source}: default_reply must be a text")
    cues.sort(key=lambda c: -len(c[0]))
    return NearDomain(tuple(cues), replies, frozenset(map(str, keep)), max_conf, default.strip())


def load_near_domain(path: Path | str = NEAR_DOMAIN_FILE) -> NearDomain:
    return parse_near_domain(read_yaml(Path(path), NearDomainError), str(path))

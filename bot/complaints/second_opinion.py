"""Complaint second opinion: a recall-tuned check beside the intent classifier (issue 17).

A missed complaint is an angry guest no advisor hears about, so this check errs towards "complaint":
it scores the message on complaint cues (strong and weak words, sarcasm markers, a complaint after
a "但是"), minus praise words, with negated cues ("一点都不吵", "没有异味") not counted, and says
"complaint" when the score reaches the threshold. The cues are data: data/complaints/second_opinion.yml.

Used by the NLU pipeline (bot/nlu/complaint_guard.py), which turns the classifier's decision into
`complain` when the opinion says so; its cost (praise and neutral messages raised as complaints)
is measured by `make eval` (praise taken for a complaint) and in docs/NLU.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from bot.settings import PROJECT_ROOT
from bot.core.data import read_yaml

CUES_FILE = PROJECT_ROOT / "data" / "complaints" / "second_opinion.yml"
COMPLAIN = "complain"


class CuesError(ValueError):
    """The cue file is malformed; the message says where."""


@dataclass(frozen=True)
class Cues:
    strong: Tuple[str, ...]
    weak: Tuple[str, ...]
    sarcasm: Tuple[str, ...]
    praise: Tuple[str, ...]
    negators: Tuple[str, ...]
    contrast: Tuple[str, ...]
    ignore: Tuple[str, ...]
    not_over: frozenset
    threshold: float = 1.0
    threshold_over: Tuple[Tuple[str, float], ...] = ()


@dataclass
class Opinion:
    complaint: bool
    score: float
    cues: List[str] = field(
        default_factory=list
    )  # what counted, e.g. ["strong:太吵", "praise:满意"]


def parse_cues(data: dict, source: str = "<cues>") -> Cues:
    if not isinstance(data, dict):
        raise CuesError(f"{source}: expected a mapping")

    def words(key: str) -> Tuple[str, ...]:
        val = data.get(key) or []
        if not isinstance(val, list) or not all(isinstance(w, str) and w.strip() for w in val):
            raise CuesError(f"{source}: {key} must be a list of non-empty strings")
        return tuple(w.strip().lower() for w in val)

    try:
        threshold = float(data.get("threshold", 1.0))
        over = data.get("threshold_over") or {}
        if not isinstance(over, dict):
            raise TypeError
        threshold_over = tuple((str(k), float(v)) for k, v in over.items())
    except (TypeError, ValueError):
        raise CuesError(
            f"{source}: threshold must be a number, threshold_over a mapping of intent: number"
        ) from None
    cues = Cues(
        strong=words("strong"),
        weak=words("weak"),
        sarcasm=words("sarcasm"),
        praise=words("praise"),
        negators=words("negators"),
        contrast=words("contrast"),
        ignore=words("ignore"),
        not_over=frozenset(words("not_over")),
        threshold=threshold,
        threshold_over=threshold_over,
    )
    if not cues.strong:
        raise CuesError(f"{source}: no strong cues")
    return cues


def load_cues(path: Path | str = CUES_FILE) -> Cues:
    return parse_cues(read_yaml(Path(path), CuesError), str(path))


def _matches(text: str, words: Iterable[Tuple[str, str]]) -> List[Tuple[int, int, str, str]]:
    """Longest non-overlapping matches of (kind, word) in text: (start, end, kind, word)."""
    found = []
    for kind, w in words:
        start = text.find(w)
        while start >= 0:
            found.append((start, start + len(w), kind, w))
            start = text.find(w, start + 1)
    found.sort(key=lambda m: (-(m[1] - m[0]), m[0]))
    taken: List[Tuple[int, int, str, str]] = []
    for m in found:
        if all(m[1] <= t[0] or m[0] >= t[1] for t in taken):
            taken.append(m)
    return sorted(taken)


class ComplaintSecondOpinion:
    def __init__(self, cues: Optional[Cues] = None):
        self.cues = cues or load_cues()
        c = self.cues
        self._words = (
            [("strong", w) for w in c.strong]
            + [("weak", w) for w in c.weak]
            + [("sarcasm", w) for w in c.sarcasm]
            + [("praise", w) for w in c.praise]
            + [("ignore", w) for w in c.ignore]
        )
        self._negators = sorted(c.negators, key=len, reverse=True)
        self._over = dict(c.threshold_over)

    def _negated(self, text: str, start: int, word: str) -> bool:
        if word.startswith(("不", "没", "无")):  # the cue is itself a negation (不干净, 没热水)
            return False
        before = text[max(0, start - 5) : start]
        return any(before.endswith(n) for n in self._negators)

    def score(self, text: str) -> Opinion:
        """The complaint score of a normalised text (lower case, simplified)."""
        text = (text or "").lower()
        c = self.cues
        contrast_at = min((i for i in (text.find(w) for w in c.contrast) if i >= 0), default=None)
        strong = soft = praise = 0.0
        counted: List[str] = []
        for start, _end, kind, word in _matches(text, self._words):
            if kind == "ignore" or self._negated(text, start, word):
                continue
            after_contrast = contrast_at is not None and start > contrast_at
            if kind == "praise":
                praise += 0.7
            elif kind == "strong":
                strong += 2.0 if after_contrast else 1.0
            else:
                soft += 1.0 if (after_contrast and kind == "weak") else 0.5
            counted.append(f"{kind}:{word}")
        # Praise outweighs weak cues and sarcasm markers, never a strong cue: "早餐难吃 服务很好"
        # is still a complaint about the breakfast.
        score = strong + max(0.0, soft - praise) if strong else soft - praise
        return Opinion(complaint=score >= c.threshold - 1e-9, score=round(score, 2), cues=counted)

    def judge(self, text: str, intent: Optional[str]) -> Opinion:
        """The opinion, given what the classifier decided: never overrides the intents listed in
        `not_over`, has nothing to add when the classifier already says complain, and needs the
        higher score in `threshold_over` to overrule the intents listed there."""
        op = self.score(text)
        if intent == COMPLAIN or intent in self.cues.not_over:
            op.complaint = False
        elif intent in self._over:
            op.complaint = op.score >= self._over[intent] - 1e-9
        return op


def false_alarm_rate(opinion: ComplaintSecondOpinion, texts: Sequence[str]) -> Optional[float]:
    """Share of (non-complaint) texts the second opinion would raise as complaints."""
    if not texts:
        return None
    return sum(opinion.score(t).complaint for t in texts) / len(texts)

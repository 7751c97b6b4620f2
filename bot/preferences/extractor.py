"""Find preference tags in one guest message, from the vocabulary (data), not from code.

"我们是来度蜜月的，老公对海鲜过敏，想要高楼层" -> purpose:蜜月, allergy:海鲜, floor:高楼层.
"不是蜜月，是结婚纪念日" -> retract purpose:蜜月, add purpose:纪念日.

Order of matching: date templates (生日是5月20号), then term templates (对{term}过敏), then literal
synonyms, each over the text the earlier passes have not used; among synonyms the longest phrase
wins at a position (不吸烟 beats 吸烟). A match directly after a negation cue in the same clause
is a take-back.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

from bot.orders.when import month_day
from bot.preferences.vocabulary import (
    DATE_CONFIDENCE,
    TEMPLATE_CONFIDENCE,
    Vocabulary,
    load_vocabulary,
)

_CLAUSE_BREAK = re.compile(r"[，,。.！!？?；;、\n~～]")
# Words that may stand between a cue and the tag: 不是来度蜜月, 不想住低楼层, 不要那个吸烟房.
_FILLER = "[来去要住是在的那个这种订一]{0,3}"
_MASK = "\x00"
_LIST_SEP = "(?:[和、跟与及,，/]|还有|以及)"


def normalize_text(text: str) -> str:
    """The project's normaliser when it is there (traditional -> simplified, full-width ...)."""
    try:
        from bot.nlu.normalizer import normalize
    except ImportError:  # pragma: no cover - the normaliser ships with the project
        normalize = None
    if normalize is not None:
        try:
            return normalize(text)
        except Exception:  # OpenCC missing on a dev box: fall back to the basics
            pass
    return unicodedata.normalize("NFKC", text or "").lower().strip()


@dataclass(frozen=True)
class TagMatch:
    category: str
    value: str
    confidence: float
    start: int
    end: int
    phrase: str
    retract: bool = False


class PreferenceExtractor:
    def __init__(self, vocabulary: Vocabulary | None = None):
        self.vocab = vocabulary or load_vocabulary()
        phrases = sorted(self.vocab.phrase_index, key=len, reverse=True)
        self._synonym_re = re.compile("|".join(re.escape(p) for p in phrases)) if phrases else None
        self._templates: list[tuple[re.Pattern, dict]] = []
        for cat in self.vocab.categories.values():
            if not cat.templates:
                continue
            terms = {t: e for e in self.vocab.entries if e.category == cat.key for t in e.terms}
            if not terms:
                continue
            alternation = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
            for template in cat.templates:
                # "对花生和芒果过敏": a list of terms stands where one term may
                listed = f"(?P<term>(?:{alternation})(?:{_LIST_SEP}(?:{alternation}))*)"
                pattern = re.compile(template.replace("{term}", listed))
                self._templates.append((pattern, terms))
        cues = "|".join(re.escape(c) for c in self.vocab.negation_cues)
        self._negated_re = re.compile(f"(?:{cues}){_FILLER}$") if cues else None

    def extract(self, text: str, now: dt.datetime | None = None) -> list[TagMatch]:
        norm = normalize_text(text)
        masked = list(norm)
        found: list[TagMatch] = []

        def use(start: int, end: int) -> None:
            for i in range(start, end):
                masked[i] = _MASK

        # 1. calendar days: birthdays and anniversaries
        for cat in self.vocab.categories.values():
            for pattern in cat.date_templates:
                for m in pattern.finditer("".join(masked)):
                    day = month_day(m.group("date"), now)
                    if day is None:
                        continue
                    found.append(
                        TagMatch(cat.key, day, DATE_CONFIDENCE, m.start(), m.end(), m.group(0))
                    )
                    use(m.start(), m.end())
        # 2. templates around terms: 对海鲜过敏, 不吃香菜
        for pattern, terms in self._templates:
            for m in pattern.finditer("".join(masked)):
                retract = self._negated(norm, m.start())
                for term in re.split(_LIST_SEP, m.group("term")):
                    entry = terms.get(term)
                    if entry is None:
                        continue
                    found.append(
                        TagMatch(
                            entry.category,
                            entry.value,
                            TEMPLATE_CONFIDENCE,
                            m.start(),
                            m.end(),
                            m.group(0),
                            retract=retract,
                        )
                    )
                use(m.start(), m.end())
        # 3. literal synonyms, longest first
        if self._synonym_re is not None:
            for m in self._synonym_re.finditer("".join(masked)):
                entry, confidence = self.vocab.phrase_index[m.group(0)]
                found.append(
                    TagMatch(
                        entry.category,
                        entry.value,
                        confidence,
                        m.start(),
                        m.end(),
                        m.group(0),
                        retract=self._negated(norm, m.start()),
                    )
                )
        return _settle(sorted(found, key=lambda t: t.start))

    def _negated(self, text: str, start: int) -> bool:
        if self._negated_re is None:
            return False
        clause = _CLAUSE_BREAK.split(text[:start])[-1]
        return bool(self._negated_re.search(clause))


def _settle(matches: list[TagMatch]) -> list[TagMatch]:
    """One verdict per (category, value): the last thing said about it wins, and the strongest
    confidence of the same verdict is kept."""
    by_tag: dict[tuple[str, str], TagMatch] = {}
    for match in matches:
        key = (match.category, match.value)
        previous = by_tag.get(key)
        if (
            previous is not None
            and previous.retract == match.retract
            and previous.confidence > match.confidence
        ):
            match = TagMatch(
                match.category,
                match.value,
                previous.confidence,
                match.start,
                match.end,
                match.phrase,
                match.retract,
            )
        by_tag.pop(key, None)
        by_tag[key] = match
    return sorted(by_tag.values(), key=lambda t: t.start)

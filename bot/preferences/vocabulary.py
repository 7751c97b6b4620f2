"""The preference vocabulary (`data/preferences/vocabulary.yml`) as plain objects.

Synonyms, categories and phrasing are data: adding "荞麦皮枕头" is a YAML edit. The file is checked
when loaded and an error names the entry, because the person fixing it is editing YAML.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.core.errors import DataError
from bot.settings import PROJECT_ROOT

VOCABULARY_FILE = PROJECT_ROOT / "data" / "preferences" / "vocabulary.yml"
SYNONYM_CONFIDENCE = 0.9
TEMPLATE_CONFIDENCE = 0.95
DATE_CONFIDENCE = 0.9


class VocabularyError(DataError):
    """The vocabulary file is missing a key or has a wrong value."""


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    multi: bool
    mirror: bool
    say: str
    templates: tuple[str, ...] = ()
    date_templates: tuple[re.Pattern, ...] = ()
    amenity: str | None = None


@dataclass(frozen=True)
class Entry:
    category: str
    value: str
    say: str
    synonyms: tuple[tuple[str, float], ...] = ()  # (phrase, confidence)
    terms: tuple[str, ...] = ()
    confidence: float = SYNONYM_CONFIDENCE


@dataclass(frozen=True)
class Vocabulary:
    categories: dict[str, Category]
    entries: tuple[Entry, ...]
    negation_cues: tuple[str, ...]
    # built in __post_init__-like factory below
    phrase_index: dict[str, tuple[Entry, float]] = field(default_factory=dict)

    def category(self, key: str) -> Category:
        return self.categories[key]

    def entry(self, category: str, value: str) -> Entry | None:
        for entry in self.entries:
            if entry.category == category and entry.value == value:
                return entry
        return None

    def say(self, category: str, value: str) -> str:
        """The phrase that confirms one tag back to the guest ("希望住高楼层"): the category's
        `say` around the entry's own `say` (or the value)."""
        cat = self.categories.get(category)
        entry = self.entry(category, value)
        word = entry.say if entry else value
        if cat is not None and cat.date_templates and re.fullmatch(r"\d{2}-\d{2}", value):
            month, day = value.split("-")
            word = f"{int(month)}月{int(day)}日"
        return cat.say.format(value=word) if cat is not None else word


def _synonym(raw: Any, where: str, default: float) -> tuple[str, float]:
    if isinstance(raw, str):
        return raw.strip().lower(), default
    if isinstance(raw, dict) and isinstance(raw.get("text"), str):
        confidence = float(raw.get("confidence", default))
        if not 0 < confidence <= 1:
            raise VocabularyError(f"{where}: confidence must be in (0, 1]")
        return raw["text"].strip().lower(), confidence
    raise VocabularyError(f"{where}: a synonym is a string or {{text, confidence}}")


def parse_vocabulary(data: Any, source: str = "<vocabulary>") -> Vocabulary:
    if not isinstance(data, dict):
        raise VocabularyError(f"{source}: expected a mapping at the top")
    categories: dict[str, Category] = {}
    for key, raw in (data.get("categories") or {}).items():
        where = f"{source}: categories.{key}"
        if not isinstance(raw, dict) or "label" not in raw or "say" not in raw:
            raise VocabularyError(f"{where}: needs label and say")
        try:
            date_templates = tuple(re.compile(t) for t in raw.get("date_templates") or ())
        except re.error as exc:
            raise VocabularyError(f"{where}.date_templates: {exc}") from exc
        for template in raw.get("templates") or ():
            if "{term}" not in template:
                raise VocabularyError(f"{where}.templates: {template!r} has no {{term}}")
        categories[key] = Category(
            key=key,
            label=str(raw["label"]),
            multi=bool(raw.get("multi", False)),
            mirror=bool(raw.get("mirror", False)),
            say=str(raw["say"]),
            templates=tuple(raw.get("templates") or ()),
            date_templates=date_templates,
            amenity=raw.get("amenity"),
        )
    entries = []
    index: dict[str, tuple[Entry, float]] = {}
    for i, raw in enumerate(data.get("tags") or ()):
        where = f"{source}: tags[{i}]"
        if not isinstance(raw, dict) or "category" not in raw or "value" not in raw:
            raise VocabularyError(f"{where}: needs category and value")
        if raw["category"] not in categories:
            raise VocabularyError(f"{where}: unknown category {raw['category']!r}")
        default = float(raw.get("confidence", SYNONYM_CONFIDENCE))
        synonyms = tuple(_synonym(s, where, default) for s in raw.get("synonyms") or ())
        terms = tuple(str(t).strip().lower() for t in raw.get("terms") or ())
        if not synonyms and not terms:
            raise VocabularyError(f"{where}: needs synonyms or terms")
        if terms and not categories[raw["category"]].templates:
            raise VocabularyError(f"{where}: terms given but category has no templates")
        entry = Entry(
            category=raw["category"],
            value=str(raw["value"]),
            say=str(raw.get("say", raw["value"])),
            synonyms=synonyms,
            terms=terms,
            confidence=default,
        )
        entries.append(entry)
        for phrase, confidence in synonyms:
            if phrase in index and index[phrase][0] is not entry:
                other = index[phrase][0]
                raise VocabularyError(
                    f"{where}: synonym {phrase!r} also means " f"{other.category}:{other.value}"
                )
            index[phrase] = (entry, confidence)
    cues = tuple(sorted((str(c) for c in data.get("negation_cues") or ()), key=len, reverse=True))
    return Vocabulary(
        categories=categories, entries=tuple(entries), negation_cues=cues, phrase_index=index
    )


@functools.lru_cache(maxsize=4)
def load_vocabulary(path: Path | str = VOCABULARY_FILE) -> Vocabulary:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise VocabularyError(f"cannot read {path}: {exc}") from exc
    return parse_vocabulary(data, str(path))

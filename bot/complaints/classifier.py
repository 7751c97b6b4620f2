"""Classify a complaint from its words, by the rules in `data/complaints/rules.yml`:
category (hygiene, noise, not as pictured, ...), severity (routine / major incident), nature
(service failure / force majeure), strong anger, and where / since when if the guest said so.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from bot.core.errors import DataError
from bot.preferences.extractor import normalize_text
from bot.settings import PROJECT_ROOT

RULES_FILE = PROJECT_ROOT / "data" / "complaints" / "rules.yml"
ROUTINE, MAJOR = "routine", "major"
SERVICE_FAILURE, FORCE_MAJEURE = "service_failure", "force_majeure"


class RulesError(DataError):
    pass


@dataclass(frozen=True)
class Category:
    key: str
    label: str
    keywords: tuple[str, ...]
    empathy: str
    nature: str = SERVICE_FAILURE


@dataclass(frozen=True)
class Classification:
    category: str
    label: str
    severity: str
    nature: str
    empathy: str
    angry: bool
    major_reason: Optional[str] = None  # e.g. "人身受伤"
    location: Optional[str] = None
    since: Optional[str] = None


@dataclass(frozen=True)
class Major:
    label: str
    category: str
    empathy: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Remedy:
    """What the policy offers for a complaint of one nature (shown to the advisor)."""

    nature: str
    label: str
    remedy: str


@dataclass(frozen=True)
class Rules:
    categories: tuple[Category, ...]
    major: tuple["Major", ...]
    force_majeure: tuple[str, ...]
    anger: tuple[str, ...]
    room_patterns: tuple[re.Pattern, ...]
    places: tuple[str, ...]
    since: tuple[str, ...]
    remedies: tuple["Remedy", ...] = ()

    def category(self, key: str) -> Category:
        for cat in self.categories:
            if cat.key == key:
                return cat
        return self.categories[-1]


def parse_rules(data: dict, source: str = "<rules>") -> Rules:
    if not isinstance(data, dict) or not isinstance(data.get("categories"), dict):
        raise RulesError(f"{source}: needs a 'categories' mapping")
    categories = []
    for key, raw in data["categories"].items():
        if not isinstance(raw, dict) or "label" not in raw or "empathy" not in raw:
            raise RulesError(f"{source}: categories.{key} needs label and empathy")
        nature = raw.get("nature", SERVICE_FAILURE)
        if nature not in (SERVICE_FAILURE, FORCE_MAJEURE):
            raise RulesError(
                f"{source}: categories.{key}.nature must be service_failure or force_majeure"
            )
        categories.append(
            Category(
                key,
                str(raw["label"]),
                tuple(str(k).lower() for k in raw.get("keywords") or ()),
                str(raw["empathy"]),
                nature,
            )
        )
    if "other" not in data["categories"]:
        raise RulesError(f"{source}: needs an 'other' category (the fallback)")
    major = []
    for i, m in enumerate(data.get("major") or ()):
        if not isinstance(m, dict) or not {"label", "category", "empathy", "keywords"} <= set(m):
            raise RulesError(f"{source}: major[{i}] needs label, category, empathy, keywords")
        if m["category"] not in data["categories"]:
            raise RulesError(f"{source}: major[{i}].category {m['category']!r} is not a category")
        major.append(
            Major(
                str(m["label"]),
                str(m["category"]),
                str(m["empathy"]),
                tuple(str(k).lower() for k in m["keywords"]),
            )
        )
    major = tuple(major)
    locations = data.get("locations") or {}
    try:
        rooms = tuple(re.compile(p) for p in locations.get("room_number") or ())
    except re.error as exc:
        raise RulesError(f"{source}: locations.room_number: {exc}") from exc
    remedies = []
    for nature, raw in (data.get("remedies") or {}).items():
        if nature not in (SERVICE_FAILURE, FORCE_MAJEURE):
            raise RulesError(f"{source}: remedies.{nature}: not service_failure or force_majeure")
        if not isinstance(raw, dict) or not raw.get("label") or not raw.get("remedy"):
            raise RulesError(f"{source}: remedies.{nature} needs label and remedy")
        remedies.append(Remedy(nature, str(raw["label"]), str(raw["remedy"])))
    return Rules(
        remedies=tuple(remedies),
        categories=tuple(categories),
        major=major,
        force_majeure=tuple(str(k).lower() for k in data.get("force_majeure") or ()),
        anger=tuple(str(k).lower() for k in data.get("anger") or ()),
        room_patterns=rooms,
        places=tuple(
            sorted((str(p).lower() for p in locations.get("places") or ()), key=len, reverse=True)
        ),
        since=tuple(sorted((str(s) for s in data.get("since") or ()), key=len, reverse=True)),
    )


def remedy_for(nature: Optional[str], rules: Optional[Rules] = None) -> Optional[Remedy]:
    """The policy's remedy for a complaint nature (None for an unknown nature)."""
    for remedy in (rules or load_rules()).remedies:
        if remedy.nature == nature:
            return remedy
    return None


@functools.lru_cache(maxsize=4)
def load_rules(path: Path | str = RULES_FILE) -> Rules:
    with open(path, encoding="utf-8") as fh:
        return parse_rules(yaml.safe_load(fh), str(path))


class ComplaintClassifier:
    def __init__(self, rules: Rules | None = None):
        self.rules = rules or load_rules()

    def classify(self, text: str) -> Classification:
        norm = normalize_text(text)
        best: tuple[int, int, Category] | None = None
        for order, cat in enumerate(self.rules.categories):
            for kw in cat.keywords:
                if kw and kw in norm:
                    score = (len(kw), -order)
                    if best is None or score > best[:2]:
                        best = (len(kw), -order, cat)
        category = best[2] if best else self.rules.category("other")
        major = next((m for m in self.rules.major if any(k in norm for k in m.keywords)), None)
        empathy = category.empathy
        if major is not None:
            if best is None:  # nothing more specific said: file it under the incident's category
                category = self.rules.category(major.category)
            empathy = major.empathy
        force = category.nature == FORCE_MAJEURE or any(k in norm for k in self.rules.force_majeure)
        angry = any(k in norm for k in self.rules.anger) or bool(re.search(r"[!！]{3,}", norm))
        return Classification(
            category=category.key,
            label=category.label,
            severity=MAJOR if major else ROUTINE,
            nature=FORCE_MAJEURE if force else SERVICE_FAILURE,
            empathy=empathy,
            angry=angry,
            major_reason=major.label if major else None,
            location=self.location(norm),
            since=self.since(norm),
        )

    def location(self, text: str) -> Optional[str]:
        norm = normalize_text(text)
        for pattern in self.rules.room_patterns:
            m = pattern.search(norm)
            if m:
                return f"{m.group('room')}房间"
        for place in self.rules.places:
            if place in norm:
                return place
        return None

    def since(self, text: str) -> Optional[str]:
        norm = normalize_text(text)
        for phrase in self.rules.since:
            if phrase in norm:
                m = re.search(r"(?:从)?" + re.escape(phrase) + r"(?:开始|起)?", norm)
                return m.group(0) if m else phrase
        from bot.orders.when import find_when

        found = find_when(norm)
        return found.text if found is not None else None

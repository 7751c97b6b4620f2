"""The add-on catalogue: which items exist (`data/catalogue/items.yml`) and which property offers
which, when, for how many and at what price (`data/catalogue/<property_id>.yml`).

Data, not code: hotel staff change spa hours, not Python. Files are checked when loaded and an
error names the file and key. Nothing is read at import time.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from bot.core.errors import DataError
from bot.settings import PROJECT_ROOT

CATALOGUE_DIR = PROJECT_ROOT / "data" / "catalogue"
ITEMS_FILE = "items.yml"
NEEDS = ("when", "party", "flight")
WINDOWS = ("arrival", "departure", "stay")
_HOURS_RE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")


class CatalogueError(DataError):
    pass


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    synonyms: tuple[str, ...]
    needs: tuple[str, ...]
    window: str


@dataclass(frozen=True)
class Offer:
    item: Item
    property_id: str
    hours: tuple[tuple[int, int], ...]  # minutes after midnight, end exclusive (<= 1440)
    lead_time: dt.timedelta
    max_party: Optional[int]
    price: Optional[str]
    supplier: Optional[str]
    note: Optional[str]

    def open_at(self, moment: dt.time) -> bool:
        minute = moment.hour * 60 + moment.minute
        return any(start <= minute < end for start, end in self.hours)

    @property
    def hours_text(self) -> str:
        return "、".join(
            f"{s // 60:02d}:{s % 60:02d}–{e // 60:02d}:{e % 60:02d}" for s, e in self.hours
        )

    @property
    def always_open(self) -> bool:
        return self.hours == ((0, 1440),)


def _hours(values: Any, where: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(values, list) or not values:
        raise CatalogueError(f'{where}: hours must be a list like ["10:00-23:00"]')
    out = []
    for value in values:
        m = _HOURS_RE.match(str(value).strip())
        if not m:
            raise CatalogueError(f'{where}: bad hours {value!r} (use "HH:MM-HH:MM")')
        h1, m1, h2, m2 = map(int, m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if not (0 <= start < end <= 1440):
            raise CatalogueError(
                f"{where}: hours {value!r} must start before they end, within a day"
            )
        out.append((start, end))
    return tuple(out)


def _duration(value: Any, where: str) -> dt.timedelta:
    m = _DURATION_RE.match(str(value or "0m").strip())
    if not m or not any(m.groups()):
        raise CatalogueError(f"{where}: bad lead_time {value!r} (use 30m, 2h, 24h)")
    return dt.timedelta(hours=int(m.group(1) or 0), minutes=int(m.group(2) or 0))


class Catalogue:
    def __init__(self, items: dict[str, Item], offers: dict[str, dict[str, Offer]]):
        self.items = items
        self.offers = offers  # property_id -> item id -> Offer
        phrases = {s.lower(): item for item in items.values() for s in (item.name, *item.synonyms)}
        self._phrases = phrases
        ordered = sorted(phrases, key=len, reverse=True)
        self._re = re.compile("|".join(re.escape(p) for p in ordered)) if ordered else None

    @classmethod
    def load(cls, directory: Path | str = CATALOGUE_DIR) -> "Catalogue":
        directory = Path(directory)
        items_path = directory / ITEMS_FILE
        raw = _read(items_path)
        items: dict[str, Item] = {}
        for item_id, spec in (raw.get("items") or {}).items():
            where = f"{items_path}: items.{item_id}"
            if not isinstance(spec, dict) or not spec.get("name"):
                raise CatalogueError(f"{where}: needs a name")
            needs = tuple(spec.get("needs") or ("when",))
            if any(n not in NEEDS for n in needs):
                raise CatalogueError(f"{where}: needs must be among {', '.join(NEEDS)}")
            window = spec.get("window", "stay")
            if window not in WINDOWS:
                raise CatalogueError(f"{where}: window must be one of {', '.join(WINDOWS)}")
            items[item_id] = Item(
                item_id,
                str(spec["name"]),
                tuple(str(s).lower() for s in spec.get("synonyms") or ()),
                needs,
                window,
            )
        offers: dict[str, dict[str, Offer]] = {}
        for path in sorted(directory.glob("*.yml")):
            if path.name == ITEMS_FILE:
                continue
            data = _read(path)
            prop = data.get("property_id") or path.stem
            if prop != path.stem:
                raise CatalogueError(f"{path}: property_id {prop!r} must match the file name")
            offers[prop] = {}
            for item_id, spec in (data.get("offers") or {}).items():
                where = f"{path}: offers.{item_id}"
                if item_id not in items:
                    raise CatalogueError(f"{where}: unknown item (add it to {ITEMS_FILE})")
                spec = spec or {}
                max_party = spec.get("max_party")
                if max_party is not None and (not isinstance(max_party, int) or max_party < 1):
                    raise CatalogueError(f"{where}: max_party must be a positive integer")
                offers[prop][item_id] = Offer(
                    item=items[item_id],
                    property_id=prop,
                    hours=_hours(spec.get("hours", ["00:00-24:00"]), where),
                    lead_time=_duration(spec.get("lead_time"), where),
                    max_party=max_party,
                    price=spec.get("price"),
                    supplier=spec.get("supplier"),
                    note=spec.get("note"),
                )
        return cls(items, offers)

    _default: "Catalogue | None" = None
    _lock = threading.Lock()

    @classmethod
    def default(cls) -> "Catalogue":
        with cls._lock:
            if cls._default is None:
                cls._default = cls.load()
            return cls._default

    # ---- look-ups -----------------------------------------------------------------------
    def find_item(self, text: str) -> Optional[Item]:
        """The item a message names (longest phrase wins), or None."""
        if not text or self._re is None:
            return None
        m = self._re.search(text.lower())
        return self._phrases[m.group(0)] if m else None

    def item_by_name(self, name: str) -> Optional[Item]:
        for item in self.items.values():
            if name in (item.id, item.name):
                return item
        return self._phrases.get((name or "").lower())

    def offer(self, property_id: str, item_id: str) -> Optional[Offer]:
        return self.offers.get(property_id, {}).get(item_id)

    def offered(self, property_id: str) -> list[Offer]:
        return list(self.offers.get(property_id, {}).values())


def _read(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise CatalogueError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: expected a mapping at the top")
    return data

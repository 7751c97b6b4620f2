"""The property knowledge base: facts about each hotel, read from `data/knowledge/*.yml`.

Why data and not code: hotel staff change breakfast hours and prices, not Python. Every answer the
bot gives about a property is rendered from these files, so a fact that is not in a file is a fact
the bot does not know (and says so). Files are validated when loaded, and an error names the file
and the key, because the person fixing it is editing YAML, not reading a traceback.

Layout of the directory:
  <property_id>.yml   one property (see sanya-haitang-resort.yml for the full shape)
  amenities.yml       the amenity vocabulary: canonical keys, Chinese labels, guest aliases
  packing_rules.yml   packing advice rules (read by `bot.knowledge.packing`)

Nothing is read at import time; `KnowledgeBase.load(dir)` reads once per process and directory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from bot.core.errors import DataError

VOCABULARY_FILE = "amenities.yml"
PACKING_RULES_FILE = "packing_rules.yml"
SHARED_FILES = frozenset({VOCABULARY_FILE, PACKING_RULES_FILE})
PROPERTY_TYPES = ("resort", "city")


class KnowledgeError(DataError):
    """A knowledge file is missing, is not valid YAML, or lacks/mistypes a key."""


# ---- the facts, as plain dataclasses ----------------------------------------------------------
@dataclass(frozen=True)
class Amenity:
    key: str  # canonical key from amenities.yml, e.g. "breakfast"
    label: str  # what the bot calls it, e.g. "早餐"
    summary: str  # one sentence, always present
    hours: str | None = None
    location: str | None = None
    price: str | None = None
    booking: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    key: str  # airport | rail | self_drive | ... (free, per property)
    origin: str  # "三亚凤凰国际机场"
    aliases: tuple[str, ...]  # words a guest may use for the origin
    distance_km: float | None
    duration: str | None
    how: tuple[str, ...]  # one line per way to come (taxi, metro, pickup ...)


@dataclass(frozen=True)
class Hospital:
    name: str
    address: str
    phone: str
    hours: str | None
    languages: tuple[str, ...]
    demo_note: str | None = None


@dataclass(frozen=True)
class Consulate:
    name: str
    phone: str
    address: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Emergency:
    front_desk: str
    hospital: Hospital | None
    police: str
    ambulance: str
    fire: str
    tourism_complaint: str | None = None
    consulate: Consulate | None = None


@dataclass(frozen=True)
class DiningTip:
    name: str
    text: str


@dataclass(frozen=True)
class MonthClimate:
    month: int
    high: float
    low: float
    rainy_days: int
    rain_mm: float
    humidity: int
    uv: int
    wind_scale: int


@dataclass(frozen=True)
class Climate:
    source: str
    months: Mapping[int, MonthClimate]
    rainy_season: tuple[int, ...]
    typhoon_season: tuple[int, ...]

    def month(self, month: int) -> MonthClimate:
        return self.months[month]


@dataclass(frozen=True)
class CheckIn:
    time: str
    early: str | None = None
    requirements: str | None = None


@dataclass(frozen=True)
class CheckOut:
    time: str
    late: str | None = None


@dataclass(frozen=True)
class Property:
    id: str
    name: str
    city: str
    type: str  # resort | city
    demo: bool
    address: str
    phone: str
    tags: tuple[str, ...]
    checkin: CheckIn
    checkout: CheckOut
    amenities: Mapping[str, Amenity]
    directions: tuple[Route, ...]
    emergency: Emergency
    dining_tips: tuple[DiningTip, ...]
    climate: Climate
    source: Path = field(compare=False)
    # The hotel's codes in PMS/OTA exports (酒店代码), besides its id: bookings import by them.
    codes: tuple[str, ...] = ()

    def amenity(self, key: str) -> Amenity | None:
        return self.amenities.get(key)


@dataclass(frozen=True)
class AmenityTerm:
    """One entry of the amenity vocabulary (amenities.yml)."""

    key: str
    label: str
    aliases: tuple[str, ...]


# ---- the knowledge base -----------------------------------------------------------------------
class KnowledgeBase:
    """All properties of one knowledge directory, plus the amenity vocabulary."""

    _cache: dict[Path, "KnowledgeBase"] = {}
    _lock = threading.Lock()

    def __init__(
        self,
        directory: Path,
        properties: Mapping[str, Property],
        vocabulary: Mapping[str, AmenityTerm],
    ):
        self.directory = directory
        self._properties = dict(properties)
        self.vocabulary = dict(vocabulary)
        self.packing_rules_path = directory / PACKING_RULES_FILE

    # construction ----------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: str | Path) -> "KnowledgeBase":
        """The knowledge base of `directory`, read and validated on the first call only."""
        path = Path(directory).resolve()
        with cls._lock:
            kb = cls._cache.get(path)
            if kb is None:
                kb = cls._cache[path] = cls._read(path)
            return kb

    @classmethod
    def default(cls) -> "KnowledgeBase":
        """The knowledge base named by the settings (`KNOWLEDGE_DIR`, default data/knowledge)."""
        from bot.settings import get_settings

        return cls.load(get_settings().knowledge_dir)

    @classmethod
    def clear_cache(cls) -> None:
        """Forget loaded directories (tests; an admin reload after editing a file)."""
        with cls._lock:
            cls._cache.clear()

    @classmethod
    def read(cls, directory: str | Path) -> "KnowledgeBase":
        """Read and validate `directory` now, bypassing the cache (bot.live reloads with it)."""
        return cls._read(Path(directory).resolve())

    @classmethod
    def _read(cls, directory: Path) -> "KnowledgeBase":
        if not directory.is_dir():
            raise KnowledgeError(f"{directory}: knowledge directory does not exist")
        vocab_file = directory / VOCABULARY_FILE
        if not vocab_file.is_file():
            raise KnowledgeError(f"{vocab_file}: amenity vocabulary file is missing")
        vocabulary = _parse_vocabulary(vocab_file, _read_yaml(vocab_file))
        properties: dict[str, Property] = {}
        for file in sorted(directory.glob("*.yml")):
            if file.name in SHARED_FILES or file.name.startswith("_"):
                continue
            prop = _parse_property(file, _read_yaml(file), vocabulary)
            properties[prop.id] = prop
        return cls(directory, properties, vocabulary)

    # queries -----------------------------------------------------------------------------------
    def properties(self) -> list[Property]:
        return [self._properties[k] for k in sorted(self._properties)]

    def property(self, property_id: str) -> Property | None:
        """The property, or None when the knowledge base has no file for it."""
        return self._properties.get(property_id)

    def property_by_code(self, code: str) -> Property | None:
        """The property an export's hotel code means: its id or one of its `codes`
        (case and surrounding spaces ignored); None when no property has it."""
        needle = (code or "").strip().lower()
        if not needle:
            return None
        for prop in self._properties.values():
            if needle == prop.id.lower() or needle in (c.lower() for c in prop.codes):
                return prop
        return None

    def require(self, property_id: str) -> Property:
        """Like `property`, but an unknown id is an error (for callers that cannot go on)."""
        prop = self._properties.get(property_id)
        if prop is None:
            known = ", ".join(sorted(self._properties)) or "none"
            raise KeyError(f"no property {property_id!r} in {self.directory} (known: {known})")
        return prop

    def amenity(self, property_id: str, key: str) -> Amenity | None:
        """The property's amenity for a canonical key or a guest word ("早餐", "游泳池"), or None
        when the property (or the knowledge base) does not list it."""
        prop = self._properties.get(property_id)
        resolved = self.resolve_amenity_key(key) if key else None
        if prop is None or resolved is None:
            return None
        return prop.amenities.get(resolved)

    def resolve_amenity_key(self, text: str) -> str | None:
        """The canonical amenity key meant by `text` (a key, label or alias), else None.

        The longest alias found inside the text wins, so "儿童泳池开吗" is the pool, not kids_club.
        """
        if not text:
            return None
        needle = text.strip().lower()
        if needle in self.vocabulary:
            return needle
        best: tuple[int, str] | None = None
        for term in self.vocabulary.values():
            for word in (term.label, *term.aliases):
                w = word.lower()
                if w and w in needle and (best is None or len(w) > best[0]):
                    best = (len(w), term.key)
        return best[1] if best else None

    def amenity_label(self, key_or_text: str) -> str:
        """The Chinese label for an amenity key or guest word; the text itself if unknown."""
        key = self.resolve_amenity_key(key_or_text)
        return self.vocabulary[key].label if key else key_or_text

    def climate(self, city: str) -> Climate | None:
        """Climate norms for a city, from the first property in that city that lists them."""
        for prop in self.properties():
            if prop.city == city or (city and (city in prop.city or prop.city in city)):
                return prop.climate
        return None


# ---- reading and validating -------------------------------------------------------------------
def _read_yaml(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise KnowledgeError(f"{file}: cannot read ({exc.strerror})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise KnowledgeError(f"{file}:{where}: invalid YAML: {problem}") from exc


class _Fields:
    """Typed access to one mapping of a knowledge file, with errors that name file and key."""

    def __init__(self, file: Path, data: Any, path: str):
        self.file, self.path = file, path
        if not isinstance(data, dict):
            raise self.error(f"must be a mapping, got {type(data).__name__}")
        self.data = data

    def error(self, message: str, key: str | None = None) -> KnowledgeError:
        where = ".".join(p for p in (self.path, key) if p)
        return KnowledgeError(f"{self.file}: '{where or '<top level>'}' {message}")

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise self.error("is required", key)
        return value

    def text(self, key: str, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(f"must be text, got {type(value).__name__}", key)
        text = str(value).strip()
        if required and not text:
            raise self.error("must not be empty", key)
        return text or None

    def number(self, key: str, required: bool = True) -> float | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"must be a number, got {value!r}", key)
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"must be true or false, got {value!r}", key)
        return value

    def texts(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self._get(key, required)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            raise self.error("must be a list of text", key)
        return tuple(str(v) for v in value)

    def ints(self, key: str) -> tuple[int, ...]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(
            isinstance(v, int) and 1 <= v <= 12 for v in value
        ):
            raise self.error("must be a list of month numbers 1-12", key)
        return tuple(value)

    def sub(self, key: str, required: bool = True) -> "_Fields | None":
        value = self._get(key, required)
        if value is None:
            return None
        return _Fields(self.file, value, f"{self.path}.{key}" if self.path else key)

    def items(self, key: str, required: bool = True) -> list["_Fields"]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error("must be a list", key)
        prefix = f"{self.path}.{key}" if self.path else key
        return [_Fields(self.file, v, f"{prefix}[{i}]") for i, v in enumerate(value)]


def _parse_vocabulary(file: Path, data: Any) -> dict[str, AmenityTerm]:
    top = _Fields(file, data, "")
    vocab = {}
    for key in top.data:
        entry = top.sub(str(key))
        vocab[str(key)] = AmenityTerm(
            key=str(key), label=entry.text("label"), aliases=entry.texts("aliases")
        )
    return vocab


def _parse_property(file: Path, data: Any, vocabulary: Mapping[str, AmenityTerm]) -> Property:
    top = _Fields(file, data, "")
    pid = top.text("id")
    if pid != file.stem:
        raise top.error(f"is {pid!r} but the file is named {file.name}: they must match", "id")
    ptype = top.text("type")
    if ptype not in PROPERTY_TYPES:
        raise top.error(f"must be one of {', '.join(PROPERTY_TYPES)}, got {ptype!r}", "type")

    checkin, checkout = top.sub("checkin"), top.sub("checkout")
    return Property(
        id=pid,
        name=top.text("name"),
        city=top.text("city"),
        type=ptype,
        demo=top.flag("demo"),
        address=top.text("address"),
        phone=top.text("phone"),
        tags=top.texts("tags"),
        checkin=CheckIn(
            time=checkin.text("time"),
            early=checkin.text("early", False),
            requirements=checkin.text("requirements", False),
        ),
        checkout=CheckOut(time=checkout.text("time"), late=checkout.text("late", False)),
        amenities=_parse_amenities(top.sub("amenities"), vocabulary),
        directions=tuple(_parse_route(r) for r in top.items("directions")),
        emergency=_parse_emergency(top.sub("emergency")),
        dining_tips=tuple(
            DiningTip(name=t.text("name"), text=t.text("text"))
            for t in top.items("dining_tips", required=False)
        ),
        climate=_parse_climate(top.sub("climate")),
        source=file,
        codes=top.texts("codes"),
    )


def _parse_amenities(section: _Fields, vocabulary: Mapping[str, AmenityTerm]) -> dict[str, Amenity]:
    amenities = {}
    for key in section.data:
        key = str(key)
        if key not in vocabulary:
            known = ", ".join(vocabulary)
            raise section.error(f"is not an amenity key in {VOCABULARY_FILE} (known: {known})", key)
        a = section.sub(key)
        amenities[key] = Amenity(
            key=key,
            label=vocabulary[key].label,
            summary=a.text("summary"),
            hours=a.text("hours", False),
            location=a.text("location", False),
            price=a.text("price", False),
            booking=a.text("booking", False),
            notes=a.texts("notes"),
        )
    return amenities


def _parse_route(r: _Fields) -> Route:
    return Route(
        key=r.text("key"),
        origin=r.text("origin"),
        aliases=r.texts("aliases"),
        distance_km=r.number("distance_km", False),
        duration=r.text("duration", False),
        how=r.texts("how", required=True),
    )


def _parse_emergency(e: _Fields) -> Emergency:
    h = e.sub("hospital", required=False)
    c = e.sub("consulate", required=False)
    return Emergency(
        front_desk=e.text("front_desk"),
        hospital=Hospital(
            name=h.text("name"),
            address=h.text("address"),
            phone=h.text("phone"),
            hours=h.text("hours", False),
            languages=h.texts("languages"),
            demo_note=h.text("demo_note", False),
        )
        if h
        else None,
        police=e.text("police"),
        ambulance=e.text("ambulance"),
        fire=e.text("fire"),
        tourism_complaint=e.text("tourism_complaint", False),
        consulate=Consulate(
            name=c.text("name"),
            phone=c.text("phone"),
            address=c.text("address", False),
            notes=c.text("notes", False),
        )
        if c
        else None,
    )


def _parse_climate(c: _Fields) -> Climate:
    months_section = c.sub("months")
    months = {}
    for m in range(1, 13):
        if m not in months_section.data:
            raise months_section.error("is required (all 12 months)", str(m))
        mc = _Fields(c.file, months_section.data[m], f"{months_section.path}.{m}")
        months[m] = MonthClimate(
            month=m,
            high=mc.number("high"),
            low=mc.number("low"),
            rainy_days=int(mc.number("rainy_days")),
            rain_mm=mc.number("rain_mm"),
            humidity=int(mc.number("humidity")),
            uv=int(mc.number("uv")),
            wind_scale=int(mc.number("wind_scale")),
        )
        if months[m].low > months[m].high:
            raise mc.error(f"low {months[m].low} is above high {months[m].high}", "low")
    return Climate(
        source=c.text("source"),
        months=months,
        rainy_season=c.ints("rainy_season"),
        typhoon_season=c.ints("typhoon_season"),
    )

"""`addon_item` and `amenity` entities from the data the bot answers from (issue 17): the words of
data/catalogue/items.yml (`name`, `synonyms`) and data/knowledge/amenities.yml (`label`,
`aliases`), matched longest first in the normalised text, with the canonical key as the value.

The tables are read from the files on first use and read again when a file changes, so an item
added to the catalogue is recognised by the running server without retraining the classifier.
An entity found here replaces an overlapping one of the same type from the CRF (ours carries the
canonical value). Which type a word gets follows the intent, as the actions read them: `amenity`
for facility questions, `addon_item` for orders (the same word, 接机 or SPA, can be both).

    - name: bot.nlu.catalogue_entities.CatalogueEntityExtractor   # after the EntitySynonymMapper
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Text, Tuple

import yaml

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.settings import PROJECT_ROOT

ADDON, AMENITY = "addon_item", "amenity"
# The intents whose actions read each entity (the training data annotates them only there).
INTENTS_FOR = {
    AMENITY: frozenset({"ask_amenity"}),
    ADDON: frozenset({"order_addon", "cancel_order", "ask_order_status", "inform"}),
}
CATALOGUE_FILE = PROJECT_ROOT / "data" / "catalogue" / "items.yml"
AMENITIES_FILE = PROJECT_ROOT / "data" / "knowledge" / "amenities.yml"


def _words(*groups: Any) -> List[str]:
    out = []
    for g in groups:
        for w in [g] if isinstance(g, str) else (g or []):
            if isinstance(w, str) and w.strip():
                out.append(w.strip().lower())
    return out


def read_tables(catalogue: Path, amenities: Path) -> Dict[str, Dict[str, str]]:
    """{entity type: {word: canonical key}} from the two data files."""
    with open(catalogue, encoding="utf-8") as fh:
        items = (yaml.safe_load(fh) or {}).get("items") or {}
    with open(amenities, encoding="utf-8") as fh:
        amen = yaml.safe_load(fh) or {}
    tables: Dict[str, Dict[str, str]] = {ADDON: {}, AMENITY: {}}
    for key, item in items.items():
        if isinstance(item, dict):
            for w in _words(item.get("name"), item.get("synonyms")):
                tables[ADDON].setdefault(w, str(key))
    for key, a in amen.items():
        if isinstance(a, dict):
            for w in _words(a.get("label"), a.get("aliases")):
                tables[AMENITY].setdefault(w, str(key))
    return tables


def find(text: str, table: Dict[str, str]) -> List[Tuple[int, int, str]]:
    """Longest non-overlapping matches of the table's words: (start, end, canonical key)."""
    low = text.lower()
    found = []
    for word, key in table.items():
        i = low.find(word)
        while i >= 0:
            found.append((i, i + len(word), key))
            i = low.find(word, i + 1)
    found.sort(key=lambda m: (-(m[1] - m[0]), m[0]))
    taken: List[Tuple[int, int, str]] = []
    for m in found:
        if all(m[1] <= t[0] or m[0] >= t[1] for t in taken):
            taken.append(m)
    return sorted(taken)


class Tables:
    """The tables, read again when either file's modification time changes."""

    def __init__(self, catalogue: Path, amenities: Path):
        self.paths = (Path(catalogue), Path(amenities))
        self._stamp: Optional[Tuple[float, float]] = None
        self._tables: Dict[str, Dict[str, str]] = {ADDON: {}, AMENITY: {}}
        self._lock = threading.Lock()

    def get(self) -> Dict[str, Dict[str, str]]:
        try:
            stamp = tuple(os.stat(p).st_mtime for p in self.paths)
        except OSError:  # a file being replaced: keep the tables we have
            return self._tables
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self._tables = read_tables(*self.paths)
                        self._stamp = stamp  # type: ignore[assignment]
                    except (OSError, yaml.YAMLError, AttributeError):
                        pass  # a half-written or broken file: keep the last good tables
        return self._tables


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class CatalogueEntityExtractor(GraphComponent, EntityExtractorMixin):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"catalogue_file": str(CATALOGUE_FILE), "amenities_file": str(AMENITIES_FILE)}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._tables = Tables(Path(config["catalogue_file"]), Path(config["amenities_file"]))

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "CatalogueEntityExtractor":
        return cls({**cls.get_default_config(), **config})

    def entities_for(self, text: str, intent: Optional[str]) -> List[Dict[str, Any]]:
        tables = self._tables.get()
        out = []
        for etype in (AMENITY, ADDON):
            if intent not in INTENTS_FOR[etype]:
                continue
            for start, end, key in find(text, tables[etype]):
                out.append(
                    {
                        "entity": etype,
                        "start": start,
                        "end": end,
                        "value": key,
                        "confidence_entity": 1.0,
                        "extractor": self.__class__.__name__,
                    }
                )
        return out

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):
                continue
            ours = self.entities_for(text, (message.get(INTENT) or {}).get(INTENT_NAME_KEY))
            if not ours:
                continue
            kept = [
                e
                for e in message.get(ENTITIES, [])
                if not any(
                    e.get("entity") == o["entity"]
                    and e.get("start", 0) < o["end"]
                    and o["start"] < e.get("end", 0)
                    for o in ours
                )
            ]
            message.set(
                ENTITIES, sorted(kept + ours, key=lambda e: e.get("start", 0)), add_to_output=True
            )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

"""Two things in one message (issue 17): "天气怎么样？顺便帮我订个接机" is answered for both, or
the second is at least acknowledged, never dropped.

The classifier gives one intent per message. This component (after the classifier and the
guards) cuts the message into clauses and looks for a second request in the other clauses with
the cue lists of data/scope/second_requests.yml (an order also needs a catalogue word). The parse
result then carries ``second_request: {"intent", "text"}``; the answer actions (actions/pretrip.py)
run the second one after their own answer. When the classifier chose the order and the other
clause is a question, the question becomes the intent and the order the second request: a quick
answer first, then the order form, which asks its own questions.

    - name: bot.nlu.second_request.SecondRequestDetector
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.settings import PROJECT_ROOT
from bot.core.data import read_yaml

CUES_FILE = PROJECT_ROOT / "data" / "scope" / "second_requests.yml"
OUTPUT_KEY = "second_request"
ORDER = "order_addon"
# Questions answered at once: when the classifier chose the order, these go first.
QUESTIONS = frozenset({"ask_weather", "ask_packing", "ask_checkout_time", "ask_checkin_time"})
# Pairs one answer already covers (the packing answer gives the weather: bot.pretrip.asks_weather_too).
ANSWERED_TOGETHER = frozenset({frozenset({"ask_weather", "ask_packing"})})
MIN_CONFIDENCE = 0.6  # above the FallbackClassifier's threshold
MARGIN = 0.1
_SPLIT = r"[？?！!。；;，,\n]+"


class SecondRequestError(ValueError):
    """The cue file is malformed."""


def load_cues(
    path: Path | str = CUES_FILE,
) -> Tuple[Tuple[str, ...], Dict[str, List[Tuple[str, ...]]]]:
    data = read_yaml(Path(path), SecondRequestError)
    if not isinstance(data, dict) or not isinstance(data.get("intents"), dict):
        raise SecondRequestError(f"{path}: expected 'intents' (a mapping)")
    intents = {}
    for intent, groups in data["intents"].items():
        if (
            not isinstance(groups, list)
            or not groups
            or not all(
                isinstance(g, list) and g and all(isinstance(w, str) for w in g) for g in groups
            )
        ):
            raise SecondRequestError(f"{path}: intents.{intent} must be a list of word lists")
        intents[str(intent)] = [tuple(w.lower() for w in g) for g in groups]
    joiners = tuple(str(j) for j in (data.get("joiners") or []))
    return joiners, intents


def clauses(text: str, joiners: Sequence[str]) -> List[str]:
    """The message cut at punctuation and joiner words ("顺便"), empty pieces dropped."""
    pattern = _SPLIT + ("|" + "|".join(map(re.escape, joiners)) if joiners else "")
    return [c.strip() for c in re.split(pattern, text or "") if c and c.strip()]


def clause_intent(
    clause: str, intents: Dict[str, List[Tuple[str, ...]]], catalogue_words: Sequence[str]
) -> Optional[str]:
    low = clause.lower()
    for intent, groups in intents.items():
        if all(any(w in low for w in g) for g in groups):
            if intent == ORDER and not any(w in low for w in catalogue_words):
                continue
            return intent
    return None


def detect(
    text: str,
    main_intent: Optional[str],
    joiners: Sequence[str],
    intents: Dict[str, List[Tuple[str, ...]]],
    catalogue_words: Sequence[str],
) -> Optional[Tuple[str, str, Optional[str]]]:
    """(second intent, its clause, the intent to answer first if it changes) or None."""
    parts = clauses(text, joiners)
    if len(parts) < 2:
        return None
    tagged = [(clause_intent(p, intents, catalogue_words), p) for p in parts]
    if main_intent == ORDER:
        questions = [i for i, _ in tagged if i in QUESTIONS]
        orders = [p for i, p in tagged if i == ORDER]
        if questions and orders:  # answer the question first, then take the order
            return ORDER, orders[0], questions[0]
    others = [
        (i, p)
        for i, p in tagged
        if i and i != main_intent and frozenset({i, main_intent}) not in ANSWERED_TOGETHER
    ]
    if not others:
        return None
    return others[0][0], others[0][1], None


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class SecondRequestDetector(GraphComponent, IntentClassifier):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"cues_file": None}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = config
        self._cues: Optional[Tuple[Tuple[str, ...], Dict[str, List[Tuple[str, ...]]]]] = None
        self._catalogue = None

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "SecondRequestDetector":
        return cls(config)

    def _load(self):
        if self._cues is None:  # read on first use, not at graph construction
            path = self._config.get("cues_file")
            self._cues = load_cues(path) if path else load_cues()
            from bot.nlu.catalogue_entities import AMENITIES_FILE, CATALOGUE_FILE, Tables

            self._catalogue = Tables(CATALOGUE_FILE, AMENITIES_FILE)
        return self._cues

    def process(self, messages: List[Message]) -> List[Message]:
        joiners, intents = self._load()
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):
                continue
            intent = message.get(INTENT) or {}
            words = list(self._catalogue.get()["addon_item"])
            found = detect(text, intent.get(INTENT_NAME_KEY), joiners, intents, words)
            if not found:
                continue
            second, clause, first = found
            main = first or intent.get(INTENT_NAME_KEY)
            # Both intents are answered, so the classifier hesitating between them is no reason
            # for the FallbackClassifier to ask again: the second leaves the ranking and the
            # first gets at least MIN_CONFIDENCE, a margin above the next one.
            ranking = [
                r
                for r in (message.get(INTENT_RANKING_KEY) or [])
                if r.get(INTENT_NAME_KEY) not in (main, second)
            ]
            nxt = float(ranking[0].get(PREDICTED_CONFIDENCE_KEY) or 0.0) if ranking else 0.0
            conf = min(
                1.0,
                max(
                    MIN_CONFIDENCE, float(intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0), nxt + MARGIN
                ),
            )
            message.set(
                INTENT, {INTENT_NAME_KEY: main, PREDICTED_CONFIDENCE_KEY: conf}, add_to_output=True
            )
            message.set(
                INTENT_RANKING_KEY,
                [{INTENT_NAME_KEY: main, PREDICTED_CONFIDENCE_KEY: conf}] + ranking,
                add_to_output=True,
            )
            message.set(OUTPUT_KEY, {"intent": second, "text": clause}, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

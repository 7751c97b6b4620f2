"""What the NLU guards (complaint second opinion, near-domain scope) share: the Rasa component
shell, and putting an intent on top of a message's parse result when they overrule the intent
classifier."""

from __future__ import annotations

from typing import Any, Dict, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
)
from rasa.shared.nlu.training_data.message import Message

# The overruling intent must clear the FallbackClassifier (threshold and ambiguity): it is put on
# top of the ranking with at least this confidence, a margin above the intent it overrules.
MIN_CONFIDENCE = 0.6
MARGIN = 0.1


def overrule_intent(message: Message, name: str) -> None:
    """Make `name` the message's intent, first in the ranking (its old entry dropped)."""
    intent = message.get(INTENT) or {}
    top = float(intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
    conf = min(1.0, max(MIN_CONFIDENCE, top + MARGIN))
    ranking = [r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get(INTENT_NAME_KEY) != name]
    top_entry = {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: conf}
    message.set(INTENT, dict(top_entry), add_to_output=True)
    message.set(INTENT_RANKING_KEY, [dict(top_entry)] + ranking, add_to_output=True)


class Guard(GraphComponent, IntentClassifier):
    """An untrained component after the intent classifier; subclasses read their data files on
    first use (a cached property), not at graph construction."""

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = config

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "Guard":
        return cls(config)

"""Near-domain requests (taxi apps, food delivery, other hotels ...) inside the NLU pipeline
(after the intent classifier, before the FallbackClassifier): a message that names another
company's service becomes `out_of_scope` with ``near_domain: <category>`` in the parse result, so
actions/scope.py answers "I can't do that, but ..." with a human offer instead of the generic
fallback. The cues and replies are data: data/scope/near_domain.yml.

    - name: bot.nlu.scope_guard.NearDomainGuard
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Dict, List, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.overrule import Guard, overrule_intent
from bot.scope import NearDomain, load_near_domain

OUTPUT_KEY = "near_domain"
OUT_OF_SCOPE = "out_of_scope"


def mark_out_of_scope(message: Message) -> None:
    """Make `out_of_scope` the message's intent, on top of the ranking."""
    overrule_intent(message, OUT_OF_SCOPE)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class NearDomainGuard(Guard):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"file": None}

    @cached_property
    def near(self) -> NearDomain:
        path = self._config.get("file")
        return load_near_domain(path) if path else load_near_domain()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):
                continue
            category = self.near.category(text)
            if not category:
                continue
            intent = message.get(INTENT) or {}
            if self.near.overrules(
                intent.get(INTENT_NAME_KEY), float(intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
            ):
                message.set(OUTPUT_KEY, category, add_to_output=True)
                mark_out_of_scope(message)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

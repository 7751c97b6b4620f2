"""The complaint second opinion inside the NLU pipeline (after the intent classifier, before the
FallbackClassifier): when bot.complaints.second_opinion says "complaint" and the classifier did
not, the message's intent becomes `complain`, so the complaint flow (ticket, empathy, advisor)
runs. Every parse result carries ``complaint_second_opinion`` (score, cues, raised) for the logs
and the evaluation.

    - name: bot.nlu.complaint_guard.ComplaintGuard
      cues_file: data/complaints/second_opinion.yml   # optional
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Dict, List, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.overrule import Guard, overrule_intent
from bot.complaints.second_opinion import COMPLAIN, ComplaintSecondOpinion, load_cues

OUTPUT_KEY = "complaint_second_opinion"
NEAR_DOMAIN_KEY = "near_domain"  # set by bot.nlu.scope_guard, which runs first


def raise_complaint(message: Message) -> None:
    """Make `complain` the message's intent, on top of the ranking."""
    overrule_intent(message, COMPLAIN)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class ComplaintGuard(Guard):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"cues_file": None}

    @cached_property
    def opinion(self) -> ComplaintSecondOpinion:
        path = self._config.get("cues_file")
        return ComplaintSecondOpinion(load_cues(path) if path else None)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):  # intent triggers (/greet) are exact
                continue
            intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            op = self.opinion.judge(text, intent)
            if message.get(NEAR_DOMAIN_KEY):  # about another company's service: not ours to page
                op.complaint = False
            message.set(
                OUTPUT_KEY,
                {
                    "score": op.score,
                    "cues": op.cues,
                    "raised": op.complaint,
                    "classifier_intent": intent,
                },
                add_to_output=True,
            )
            if op.complaint:
                raise_complaint(message)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

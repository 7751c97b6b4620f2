"""NLU figures on the held-out set (``make eval``).

    python -m bot.nlu.evaluate [--model models/concierge.tar.gz]
                               [--input FILE.jsonl | --holdout tests/nlu_holdout/holdout.yml]
                               [--out results/nlu] [--sweep] [--no-rasa-report]

Loads the trained model with Rasa's own API (``Agent.load`` + ``agent.parse_message``, i.e. the
exact graph the server runs, FallbackClassifier included), parses every held-out message, and
prints, side by side for the set as written (simplified) and the same set converted to traditional
characters with OpenCC ``s2t``:

* intent accuracy and macro-F1, per-intent precision/recall/F1, the most confused pairs;
* entity precision/recall/F1 by entity type (exact span and value, after synonym mapping);
* out-of-scope recall (``out_of_scope`` or ``nlu_fallback`` predicted for an out-of-scope message),
  the false-fallback rate on in-scope messages (``nlu_fallback`` predicted), ``complain`` recall;
* prediction time per message;
* the targets of issue 6 next to the figures.

It also runs Rasa's own ``rasa test nlu`` evaluation (``rasa.nlu.test.run_evaluation``) with the
same loaded model, which writes Rasa's reports, the confusion matrix and confidence histogram PNGs
into ``<out>/rasa`` (and ``<out>/rasa_traditional``), and writes ``<out>/summary.json`` and
``<out>/predictions.jsonl`` (every message with its prediction and confidences, for error
analysis and for labelling misunderstood messages).

How the figures are counted (also in docs/NLU.md):

* Intent metrics use the bot's final decision. ``nlu_fallback`` counts as ``out_of_scope`` (both
  mean "the bot does not act on this message"), so a fallback on an out-of-scope message is right
  and a fallback on an in-scope message is a miss for that intent. Macro-F1 averages over the
  intents present in the evaluated set. The same figures for the bare classifier (top intent, no
  fallback) are in the JSON summary as ``classifier_only``.
* Entities: a predicted entity counts as correct when its type, its text span and its value (after
  the EntitySynonymMapper) equal those of a gold entity of the same message. Spans are compared as
  normalised text (the ChineseNormalizer may move offsets), values after normalisation and
  lower-casing; the gold value goes through the training data's synonyms like the model's does.
  The same entity found by two extractors at the same place counts once.

This module imports Rasa only inside the functions that need a model: the metric code is plain
Python + scikit-learn and is unit-tested in tests/nlu/test_evaluate.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

OUT_OF_SCOPE = "out_of_scope"
NLU_FALLBACK = "nlu_fallback"
COMPLAIN = "complain"

DEFAULT_MODEL = "models/concierge.tar.gz"
DEFAULT_HOLDOUT = "tests/nlu_holdout/holdout.yml"
DEFAULT_NLU_DATA = "data/nlu"
DEFAULT_OUT = "results/nlu"
MAX_FALSE_FALLBACK = 0.03

PRAISE = "praise"
CLOSING_INTENTS = ("thank", "goodbye")
AMENITY = "ask_amenity"
DEFAULT_HOLDOUTS = ("tests/nlu_holdout/holdout.yml", "tests/nlu_holdout_independent/holdout.yml")

# Targets from issues 6 and 17: summary key -> (comparison, value). Per evaluated set.
TARGETS: Dict[str, Tuple[str, float]] = {
    "macro_f1": (">=", 0.95),
    "complain_recall": (">=", 0.97),
    "praise_as_complain_rate": ("<=", 0.05),
    "oos_recall": (">=", 0.90),
    "false_fallback_rate": ("<=", MAX_FALSE_FALLBACK),
    "closing_recall": (">=", 0.95),
    "amenity_recall": (">=", 0.90),
    "entity_f1": (">=", 0.90),
    "p95_ms": ("<=", 30.0),
}
# Targets of the process, not of one set (issue 17).
PROCESS_TARGETS: Dict[str, Tuple[str, float]] = {
    "rss_mb": ("<=", 800.0),
    "full_training_s": ("<=", 60.0),
}
TRADITIONAL_MAX_DROP = 0.02  # "the traditional version within 2 points of the simplified one"


# ============================================================================================
# data
# ============================================================================================
class InputFormatError(ValueError):
    """A malformed evaluation input; the message names the file and the line."""


@dataclass
class Example:
    """One evaluation message: text, gold intent, gold entities (Rasa's dict shape)."""

    text: str
    intent: str
    entities: List[Dict[str, Any]] = field(default_factory=list)
    has_entity_annotations: bool = True


@dataclass
class Prediction:
    """What the model did with one message."""

    intent: str  # the final intent (nlu_fallback included)
    confidence: float
    ranking: List[Tuple[str, float]]  # the classifier's ranking, without nlu_fallback
    entities: List[Dict[str, Any]] = field(default_factory=list)
    text: str = ""  # the text as the model returned it (normalised)
    ms: float = 0.0
    raised_complaint: bool = False  # the complaint second opinion overruled the classifier


def load_jsonl(path: os.PathLike | str) -> List[Example]:
    """Read ``{"text": ..., "intent": ...}`` lines (optionally ``"entities"``).

    Blank lines are skipped. Anything else that is not such an object raises
    :class:`InputFormatError` naming the file and the 1-based line number.
    """
    examples: List[Example] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"{where}: not valid JSON ({exc.msg})") from None
            examples.append(_example_from_obj(obj, where))
    if not examples:
        raise InputFormatError(f"{path}: no examples (empty file)")
    return examples


def _example_from_obj(obj: Any, where: str) -> Example:
    if not isinstance(obj, dict):
        raise InputFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("text", "intent"):
        if key not in obj:
            raise InputFormatError(f'{where}: missing "{key}"')
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise InputFormatError(f'{where}: "{key}" must be a non-empty string')
    text = obj["text"]
    has_entities = "entities" in obj
    entities = obj.get("entities")
    if entities is None:
        entities = []
    if not isinstance(entities, list):
        raise InputFormatError(f'{where}: "entities" must be a list')
    checked = []
    for i, ent in enumerate(entities):
        if not isinstance(ent, dict) or not isinstance(ent.get("entity"), str):
            raise InputFormatError(f'{where}: entities[{i}] needs an "entity" name')
        start, end = ent.get("start"), ent.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise InputFormatError(
                f"{where}: entities[{i}] needs integer start < end within the text (0..{len(text)})"
            )
        checked.append(
            {
                "entity": ent["entity"],
                "start": start,
                "end": end,
                "value": ent.get("value", text[start:end]),
            }
        )
    return Example(
        text=text,
        intent=obj["intent"].strip(),
        entities=checked,
        has_entity_annotations=has_entities,
    )


def load_rasa_nlu(path: os.PathLike | str) -> List[Example]:
    """Read a Rasa NLU file (YAML) with Rasa's own loader: intents and annotated entities."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    examples = []
    for msg in data.intent_examples:
        ents = [
            {
                "entity": e["entity"],
                "start": e["start"],
                "end": e["end"],
                "value": e.get("value", msg.get("text")[e["start"] : e["end"]]),
            }
            for e in msg.get("entities") or []
        ]
        examples.append(Example(text=msg.get("text"), intent=msg.get("intent"), entities=ents))
    if not examples:
        raise InputFormatError(f"{path}: no intent examples")
    return examples


def load_examples(path: os.PathLike | str) -> List[Example]:
    return load_jsonl(path) if str(path).endswith((".jsonl", ".json")) else load_rasa_nlu(path)


def load_synonyms(nlu_data: Optional[str]) -> Dict[str, str]:
    """The training data's entity synonyms, keys lower-cased as the EntitySynonymMapper does."""
    if not nlu_data or not Path(nlu_data).exists():
        return {}
    from rasa.shared.nlu.training_data.loading import load_data

    return {str(k).lower(): str(v) for k, v in load_data(str(nlu_data)).entity_synonyms.items()}


def data_fingerprint(*paths: str) -> str:
    """Short hash of the files under ``paths`` (training data, holdout): which data a figure is for."""
    import hashlib

    h = hashlib.sha256()
    for root in paths:
        p = Path(root)
        files = (
            sorted(f for f in p.rglob("*") if f.is_file())
            if p.is_dir()
            else ([p] if p.exists() else [])
        )
        for f in files:
            h.update(str(f).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def git_head() -> Optional[str]:
    import subprocess

    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
    except Exception:  # pragma: no cover - not a git checkout
        return None


# ============================================================================================
# text helpers (normaliser and OpenCC)
# ============================================================================================
def _default_normalize() -> Callable[[str], str]:
    try:
        from bot.nlu.normalizer import normalize

        return normalize
    except Exception:  # pragma: no cover - the normaliser is part of the project
        return lambda s: " ".join((s or "").split()).lower()


_S2T: Any = None


def to_traditional(text: str) -> str:
    global _S2T
    if _S2T is None:
        import opencc

        try:
            _S2T = opencc.OpenCC("s2t")
        except Exception:  # pragma: no cover - older OpenCC builds want the file name
            _S2T = opencc.OpenCC("s2t.json")
    return _S2T.convert(text)


def convert_example(ex: Example, convert: Callable[[str], str]) -> Example:
    """Convert the text piecewise so that entity offsets stay right even if lengths change.

    Gold values stay as annotated: they are canonical values the model must produce either way.
    """
    ents = sorted(ex.entities, key=lambda e: (e["start"], e["end"]))
    pieces: List[str] = []
    new_ents = []
    pos = 0
    overlapping = any(b["start"] < a["end"] for a, b in zip(ents, ents[1:]))
    if overlapping:  # rare; fall back to whole-text conversion when lengths are unchanged
        new_text = convert(ex.text)
        if len(new_text) != len(ex.text):
            raise ValueError(f"cannot convert overlapping entities in {ex.text!r}")
        return Example(
            new_text, ex.intent, [dict(e) for e in ex.entities], ex.has_entity_annotations
        )
    for e in ents:
        pieces.append(convert(ex.text[pos : e["start"]]))
        start = sum(len(p) for p in pieces)
        pieces.append(convert(ex.text[e["start"] : e["end"]]))
        end = sum(len(p) for p in pieces)
        new_ents.append({**e, "start": start, "end": end})
        pos = e["end"]
    pieces.append(convert(ex.text[pos:]))
    return Example("".join(pieces), ex.intent, new_ents, ex.has_entity_annotations)


# ============================================================================================
# metrics (pure)
# ============================================================================================
def effective_intent(pred: str) -> str:
    """``nlu_fallback`` and ``out_of_scope`` both mean "do not act on it"."""
    return OUT_OF_SCOPE if pred == NLU_FALLBACK else pred


def intent_report(golds: Sequence[str], preds: Sequence[str]) -> Dict[str, Any]:
    """Accuracy, macro-F1 (over the gold intents) and per-intent P/R/F1/support."""
    from sklearn.metrics import precision_recall_fscore_support

    if len(golds) != len(preds):
        raise ValueError("golds and preds differ in length")
    if not golds:
        raise ValueError("no examples")
    eff = [effective_intent(p) for p in preds]
    labels = sorted(set(golds))
    p, r, f, s = precision_recall_fscore_support(golds, eff, labels=labels, zero_division=0)
    per = {
        lab: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, lab in enumerate(labels)
    }
    return {
        "accuracy": sum(g == e for g, e in zip(golds, eff)) / len(golds),
        "macro_f1": float(sum(f) / len(labels)),
        "per_intent": per,
    }


def confused_pairs(
    golds: Sequence[str], preds: Sequence[str], top: int = 10
) -> List[Tuple[str, str, int]]:
    """The most frequent (gold, predicted) mistakes, most frequent first.

    A fallback on an out-of-scope message is not a mistake; the predicted label is shown as the
    model gave it (``nlu_fallback`` stays visible).
    """
    counts = Counter((g, p) for g, p in zip(golds, preds) if effective_intent(p) != g)
    return [(g, p, n) for (g, p), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:top]


def oos_recall(golds: Sequence[str], preds: Sequence[str]) -> Optional[float]:
    """Share of out-of-scope messages answered with out_of_scope or nlu_fallback."""
    oos = [p for g, p in zip(golds, preds) if g == OUT_OF_SCOPE]
    if not oos:
        return None
    return sum(p in (OUT_OF_SCOPE, NLU_FALLBACK) for p in oos) / len(oos)


def false_fallback_rate(golds: Sequence[str], preds: Sequence[str]) -> Optional[float]:
    """Share of in-scope messages for which nlu_fallback was predicted."""
    ins = [p for g, p in zip(golds, preds) if g != OUT_OF_SCOPE]
    if not ins:
        return None
    return sum(p == NLU_FALLBACK for p in ins) / len(ins)


def in_scope_rejected_rate(golds: Sequence[str], preds: Sequence[str]) -> Optional[float]:
    """Share of in-scope messages the bot would not act on (nlu_fallback or out_of_scope)."""
    ins = [p for g, p in zip(golds, preds) if g != OUT_OF_SCOPE]
    if not ins:
        return None
    return sum(p in (NLU_FALLBACK, OUT_OF_SCOPE) for p in ins) / len(ins)


def praise_as_complain_rate(golds: Sequence[str], preds: Sequence[str]) -> Optional[float]:
    """Share of praise taken for a complaint (an apology, a ticket and a page for a happy guest)."""
    praise = [p for g, p in zip(golds, preds) if g == PRAISE]
    if not praise:
        return None
    return sum(p == COMPLAIN for p in praise) / len(praise)


def closing_recall(golds: Sequence[str], preds: Sequence[str]) -> Optional[float]:
    """Thanks and goodbyes (alone or in a longer closing sentence) recognised as what they are."""
    pairs = [(g, p) for g, p in zip(golds, preds) if g in CLOSING_INTENTS]
    if not pairs:
        return None
    return sum(g == p for g, p in pairs) / len(pairs)


def second_opinion_cost(
    golds: Sequence[str], predictions: Sequence["Prediction"]
) -> Dict[str, Any]:
    """What the complaint second opinion did: complaints it caught, and its false alarms on praise,
    on other in-scope messages and on out-of-scope ones (each as a count and a share of that group)."""
    groups = {
        "complaints": lambda g: g == COMPLAIN,
        "praise": lambda g: g == PRAISE,
        "neutral": lambda g: g not in (COMPLAIN, PRAISE, OUT_OF_SCOPE),
        "out_of_scope": lambda g: g == OUT_OF_SCOPE,
    }
    out: Dict[str, Any] = {}
    for name, member in groups.items():
        idx = [i for i, g in enumerate(golds) if member(g)]
        raised = sum(predictions[i].raised_complaint for i in idx)
        out[name] = {"raised": raised, "of": len(idx), "rate": raised / len(idx) if idx else None}
    return out


def _canon(value: Any, normalize: Callable[[str], str]) -> str:
    return normalize(str(value)).strip().lower()


def entity_keys(
    entities: Iterable[Dict[str, Any]],
    text: str,
    normalize: Callable[[str], str],
    synonyms: Optional[Dict[str, str]] = None,
    match_value: bool = True,
) -> Counter:
    """(type, span text, value) keys of one message's entities, as a multiset.

    Entities at the same place with the same type and value (two extractors agreeing) count once.
    With ``synonyms`` (the gold side) the value is mapped like the EntitySynonymMapper maps it.
    ``match_value=False`` leaves the value out (a diagnostic: right span, value not canonical).
    """
    seen = set()
    keys: Counter = Counter()
    for e in entities:
        start, end = e.get("start"), e.get("end")
        span = (
            text[start:end]
            if isinstance(start, int) and isinstance(end, int)
            else str(e.get("value", ""))
        )
        value = e.get("value", span)
        if synonyms is not None:
            nv = normalize(str(value)).strip()
            value = synonyms.get(nv.lower(), nv)
        key = (
            e["entity"],
            _canon(span, normalize),
            _canon(value, normalize) if match_value else "",
        )
        place = (key, start, end)
        if place in seen:
            continue
        seen.add(place)
        keys[key] += 1
    return keys


def _prf(tp: int, fp: int, fn: int) -> Dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "support": tp + fn, "predicted": tp + fp}


def entity_report(gold: Sequence[Counter], pred: Sequence[Counter]) -> Dict[str, Any]:
    """Micro P/R/F1 over all entities and per entity type, from per-message key multisets."""
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for g, p in zip(gold, pred):
        for key in set(g) | set(p):
            hit = min(g[key], p[key])
            tp[key[0]] += hit
            fp[key[0]] += p[key] - hit
            fn[key[0]] += g[key] - hit
    types = sorted(set(tp) | set(fp) | set(fn))
    by_type = {t: _prf(tp[t], fp[t], fn[t]) for t in types}
    overall = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return {**overall, "by_type": by_type}


def entity_errors(
    examples: Sequence[Example], gold: Sequence[Counter], pred: Sequence[Counter], top: int = 10
) -> List[Dict[str, Any]]:
    out = []
    for ex, g, p in zip(examples, gold, pred):
        if g != p:
            out.append(
                {
                    "text": ex.text,
                    "missed": sorted((g - p).elements()),
                    "spurious": sorted((p - g).elements()),
                }
            )
    return out[:top]


def decide(ranking: Sequence[Tuple[str, float]], threshold: float, ambiguity: float) -> str:
    """The FallbackClassifier's decision for a classifier ranking (Rasa 3.6 semantics)."""
    if not ranking:
        return NLU_FALLBACK
    top_name, top_conf = ranking[0]
    if top_conf < threshold:
        return NLU_FALLBACK
    if len(ranking) >= 2 and top_conf - ranking[1][1] < ambiguity:
        return NLU_FALLBACK
    return top_name


def _frange(lo: float, hi: float, step: float) -> List[float]:
    n = int(round((hi - lo) / step))
    return [round(lo + i * step, 4) for i in range(n + 1)]


DEFAULT_THRESHOLDS = _frange(0.0, 0.9, 0.05)
DEFAULT_AMBIGUITIES = _frange(0.0, 0.3, 0.01)


def _sweep_key(r: Dict[str, Any]) -> Tuple[float, float, float, float, float]:
    return (
        (r["oos_recall"] or 0.0),
        round(r["macro_f1"], 9),
        -(r["false_fallback_rate"] or 0.0),
        r["threshold"],
        r["ambiguity_threshold"],
    )


def sweep_thresholds(
    golds: Sequence[str],
    rankings: Sequence[Sequence[Tuple[str, float]]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ambiguities: Sequence[float] = DEFAULT_AMBIGUITIES,
    max_false_fallback: float = MAX_FALSE_FALLBACK,
) -> Dict[str, Any]:
    """Evaluate every (threshold, ambiguity_threshold) pair on the classifier's rankings.

    Picks the pair with the highest OOS recall among those with false-fallback <= the limit;
    ties go to the higher macro-F1, then the lower false-fallback, then the higher thresholds (on
    equal evidence, asking beats guessing: the holdout is small and real traffic is noisier).
    """
    rows = []
    for t in thresholds:
        for a in ambiguities:
            preds = [decide(r, t, a) for r in rankings]
            rep = intent_report(golds, preds)
            rows.append(
                {
                    "threshold": t,
                    "ambiguity_threshold": a,
                    "oos_recall": oos_recall(golds, preds),
                    "false_fallback_rate": false_fallback_rate(golds, preds),
                    "macro_f1": rep["macro_f1"],
                    "complain_recall": rep["per_intent"].get(COMPLAIN, {}).get("recall"),
                }
            )
    feasible = [r for r in rows if (r["false_fallback_rate"] or 0.0) <= max_false_fallback + 1e-12]
    best = None
    if feasible:
        best = max(feasible, key=_sweep_key)
    return {"rows": rows, "best": best, "max_false_fallback": max_false_fallback}


def confidence_histogram(
    golds: Sequence[str], rankings: Sequence[Sequence[Tuple[str, float]]], bins: int = 10
) -> Dict[str, List[int]]:
    """Top-1 classifier confidence counts per bin for: in-scope right, in-scope wrong, out-of-scope."""
    hist = {
        "in_scope_correct": [0] * bins,
        "in_scope_wrong": [0] * bins,
        "out_of_scope": [0] * bins,
    }
    for g, r in zip(golds, rankings):
        if not r:
            continue
        name, conf = r[0]
        b = min(bins - 1, max(0, int(conf * bins)))
        if g == OUT_OF_SCOPE:
            hist["out_of_scope"][b] += 1
        elif name == g:
            hist["in_scope_correct"][b] += 1
        else:
            hist["in_scope_wrong"][b] += 1
    return hist


def summarize(
    examples: Sequence[Example],
    predictions: Sequence[Prediction],
    normalize: Optional[Callable[[str], str]] = None,
    synonyms: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """Every figure of the report for one evaluated set."""
    normalize = normalize or _default_normalize()
    golds = [e.intent for e in examples]
    preds = [p.intent for p in predictions]
    raw = [p.ranking[0][0] if p.ranking else NLU_FALLBACK for p in predictions]
    rep = intent_report(golds, preds)
    raw_rep = intent_report(golds, raw)
    out: Dict[str, Any] = {
        "n": len(examples),
        "n_in_scope": sum(g != OUT_OF_SCOPE for g in golds),
        "n_out_of_scope": sum(g == OUT_OF_SCOPE for g in golds),
        "accuracy": rep["accuracy"],
        "macro_f1": rep["macro_f1"],
        "per_intent": rep["per_intent"],
        "complain_recall": rep["per_intent"].get(COMPLAIN, {}).get("recall"),
        "oos_recall": oos_recall(golds, preds),
        "false_fallback_rate": false_fallback_rate(golds, preds),
        "in_scope_rejected_rate": in_scope_rejected_rate(golds, preds),
        "praise_as_complain_rate": praise_as_complain_rate(golds, preds),
        "closing_recall": closing_recall(golds, preds),
        "amenity_recall": rep["per_intent"].get(AMENITY, {}).get("recall"),
        "confused_pairs": confused_pairs(golds, preds, top=12),
        "classifier_only": {
            "accuracy": raw_rep["accuracy"],
            "macro_f1": raw_rep["macro_f1"],
            "complain_recall": raw_rep["per_intent"].get(COMPLAIN, {}).get("recall"),
            "oos_recall": oos_recall(golds, raw),
        },
        "confidence_histogram": confidence_histogram(golds, [p.ranking for p in predictions]),
    }
    out["second_opinion"] = second_opinion_cost(golds, predictions)
    annotated = [i for i, e in enumerate(examples) if e.has_entity_annotations]
    if annotated:
        ex_a = [examples[i] for i in annotated]
        gold_keys = [
            entity_keys(examples[i].entities, examples[i].text, normalize, synonyms or {})
            for i in annotated
        ]
        pred_keys = [
            entity_keys(predictions[i].entities, predictions[i].text or examples[i].text, normalize)
            for i in annotated
        ]
        ent = entity_report(gold_keys, pred_keys)
        out["entities"] = ent
        out["entities_span_only"] = entity_report(
            [
                entity_keys(
                    examples[i].entities, examples[i].text, normalize, None, match_value=False
                )
                for i in annotated
            ],
            [
                entity_keys(
                    predictions[i].entities,
                    predictions[i].text or examples[i].text,
                    normalize,
                    match_value=False,
                )
                for i in annotated
            ],
        )
        out["entity_f1"] = ent["f1"] if ent["support"] or ent["predicted"] else None
        out["entity_errors"] = entity_errors(ex_a, gold_keys, pred_keys, top=15)
    else:
        out["entities"] = None
        out["entities_span_only"] = None
        out["entity_f1"] = None
    ms = [p.ms for p in predictions]
    out["ms_per_message"] = {
        "mean": statistics.fmean(ms) if ms else None,
        "p50": _percentile(ms, 50),
        "p95": _percentile(ms, 95),
    }
    out["p95_ms"] = out["ms_per_message"]["p95"]
    return out


def _percentile(values: Sequence[float], q: float) -> Optional[float]:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def check_targets(
    simpl: Dict[str, Any], trad: Optional[Dict[str, Any]]
) -> Dict[str, Optional[bool]]:
    """Which issue-6 targets are met (None when the figure is not available)."""
    res: Dict[str, Optional[bool]] = {}
    for key, (op, val) in TARGETS.items():
        v = simpl.get(key)
        res[key] = None if v is None else (v >= val if op == ">=" else v <= val)
    if trad is not None and simpl.get("macro_f1") is not None:
        res["traditional_macro_f1_drop"] = (
            simpl["macro_f1"] - trad["macro_f1"] <= TRADITIONAL_MAX_DROP + 1e-12
        )
    return res


# ============================================================================================
# printing
# ============================================================================================
def _f(v: Optional[float], pct: bool = False) -> str:
    if v is None:
        return "  n/a"
    return f"{100 * v:5.1f}%" if pct else f"{v:.3f}"


PCT_KEYS = ("false_fallback_rate", "praise_as_complain_rate", "in_scope_rejected_rate")


def _target_text(key: str) -> str:
    op, val = {**TARGETS, **PROCESS_TARGETS}[key]
    sign = "≥" if op == ">=" else "≤"
    if key in PCT_KEYS:
        return f"{sign} {100 * val:.0f}%"
    if key in ("p95_ms", "rss_mb", "full_training_s"):
        return f"{sign} {val:.0f}"
    return f"{sign} {val:.2f}"


def _mark(ok: Optional[bool]) -> str:
    return "" if ok is None else ("ok" if ok else "MISSED")


def format_report(simpl: Dict[str, Any], trad: Optional[Dict[str, Any]], title: str = "") -> str:
    lines: List[str] = []
    w = lines.append
    checks = check_targets(simpl, trad)
    checks_t = check_targets(trad, None) if trad else {}
    w(f"== NLU evaluation{': ' + title if title else ''} ==")
    w(
        f"{simpl['n']} messages ({simpl['n_in_scope']} in scope, {simpl['n_out_of_scope']} out of scope)"
    )
    w("")
    hdr = f"{'':34}{'simplified':>11}{'traditional':>13}{'Δ':>8}   {'target':<9}{'simpl.':<8}{'trad.':<8}"
    w(hdr)
    w("-" * len(hdr))
    rows = [
        ("intent accuracy", "accuracy", False),
        ("intent macro-F1", "macro_f1", False),
        (">> complain recall <<", "complain_recall", False),
        ("praise taken for a complaint", "praise_as_complain_rate", True),
        ("out-of-scope recall", "oos_recall", False),
        ("false-fallback (in scope)", "false_fallback_rate", True),
        ("in scope not acted on (fb+oos)", "in_scope_rejected_rate", True),
        ("thanks + goodbyes recall", "closing_recall", False),
        ("amenity questions recall", "amenity_recall", False),
        ("entity F1", "entity_f1", False),
        ("prediction p95 ms / message", "p95_ms", None),
    ]
    for label, key, pct in rows:
        s = simpl.get(key)
        t = trad.get(key) if trad else None
        if pct is None:  # milliseconds
            tgt = _target_text(key) if key in TARGETS else ""
            w(
                f"{label:34}{_ms1(s):>11}{_ms1(t):>13}{'':>8}   {tgt:<9}"
                f"{_mark(checks.get(key)):<8}{_mark(checks_t.get(key)) if trad else '':<8}"
            )
            continue
        delta = (
            "" if s is None or t is None else (f"{100 * (t - s):+6.1f}" if pct else f"{t - s:+.3f}")
        )
        tgt = _target_text(key) if key in TARGETS else ""
        w(
            f"{label:34}{_f(s, pct):>11}{_f(t, pct):>13}{delta:>8}   {tgt:<9}"
            f"{_mark(checks.get(key)):<8}{_mark(checks_t.get(key)) if trad else '':<8}"
        )
    if trad:
        drop = simpl["macro_f1"] - trad["macro_f1"]
        w(
            f"{'traditional macro-F1 drop':34}{'':>11}{100 * drop:>12.1f}p{'':>8}   {'≤ 2 pts':<9}"
            f"{_mark(checks.get('traditional_macro_f1_drop')):<8}"
        )
    ms, mt = simpl["ms_per_message"], (trad or {}).get("ms_per_message", {})
    w(f"{'ms / message (mean, p95)':34}{_ms(ms):>11}{_ms(mt):>13}")
    co = simpl["classifier_only"]
    w(
        f"{'classifier alone (no fallback) F1':34}{_f(co['macro_f1']):>11}"
        f"{_f(trad['classifier_only']['macro_f1']) if trad else '':>13}"
    )
    w("")

    so = simpl.get("second_opinion") or {}
    if so and any(v["raised"] for v in so.values()):
        w(
            "Complaint second opinion (simplified): raised on "
            + ", ".join(f"{k} {v['raised']}/{v['of']}" for k, v in so.items())
            + "  (complaints: caught; the others: false alarms)"
        )
        w("")
    w("Per intent (simplified P / R / F1, traditional F1):")
    w(f"  {'intent':26}{'n':>4}{'P':>7}{'R':>7}{'F1':>7}{'F1 trad':>9}")
    for lab, m in simpl["per_intent"].items():
        tf = trad["per_intent"].get(lab, {}).get("f1") if trad else None
        flag = "  <" if m["f1"] < 0.9 else ""
        w(
            f"  {lab:26}{m['support']:>4}{m['precision']:>7.2f}{m['recall']:>7.2f}{m['f1']:>7.2f}"
            f"{_f(tf):>9}{flag}"
        )
    w("")
    w("Most confused (gold -> predicted: simplified count / traditional count):")
    tc = {(g, p): n for g, p, n in (trad or {}).get("confused_pairs", [])}
    if not simpl["confused_pairs"]:
        w("  (none)")
    for g, p, n in simpl["confused_pairs"]:
        w(f"  {g:26} -> {p:26} {n:>3} / {tc.get((g, p), 0)}")
    w("")
    if simpl.get("entities"):
        w("Entities (exact span + value after synonyms): P / R / F1 (support), traditional F1,")
        w(
            "  and F1 on the span alone (value ignored: shows spans found with a non-canonical value)"
        )
        w(f"  {'entity':26}{'P':>6}{'R':>6}{'F1':>6} {'(n)':>5}{'F1 trad':>9}{'span F1':>9}")
        et = (trad or {}).get("entities") or {"by_type": {}}
        so = simpl.get("entities_span_only") or {"by_type": {}}
        for typ, m in simpl["entities"]["by_type"].items():
            tf = et["by_type"].get(typ, {}).get("f1")
            sf = so["by_type"].get(typ, {}).get("f1")
            w(
                f"  {typ:26}{m['precision']:>6.2f}{m['recall']:>6.2f}{m['f1']:>6.2f} ({m['support']:>3})"
                f"{_f(tf):>9}{_f(sf):>9}"
            )
        e = simpl["entities"]
        w(
            f"  {'ALL':26}{e['precision']:>6.2f}{e['recall']:>6.2f}{e['f1']:>6.2f} ({e['support']:>3})"
            f"{_f(et.get('f1')):>9}{_f(so.get('f1')):>9}"
        )
    else:
        w("Entities: no entity annotations in this input.")
    return "\n".join(lines)


def _ms1(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _ms(m: Dict[str, Any]) -> str:
    if not m or m.get("mean") is None:
        return "n/a"
    return f"{m['mean']:.1f}/{m['p95']:.1f}"


def format_histogram(hist: Dict[str, List[int]]) -> str:
    bins = len(next(iter(hist.values())))
    lines = [
        "Top-1 classifier confidence (count per bin): in-scope right | in-scope wrong | out-of-scope"
    ]
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        c, wr, o = hist["in_scope_correct"][b], hist["in_scope_wrong"][b], hist["out_of_scope"][b]
        lines.append(
            f"  {lo:.1f}-{hi:.1f} {c:>5} {wr:>5} {o:>5}  {'#' * min(40, c // 5)}{'x' * min(20, wr)}{'o' * min(30, o)}"
        )
    return "\n".join(lines)


def format_sweep(sweep: Dict[str, Any], current: Optional[Tuple[float, float]] = None) -> str:
    """For every threshold, the ambiguity threshold with the best OOS recall under the limit."""
    lines = [
        f"Threshold sweep (false-fallback limit {100 * sweep['max_false_fallback']:.0f}%): "
        "for each threshold the best feasible ambiguity_threshold"
    ]
    lines.append(
        f"  {'threshold':>9} {'ambiguity':>9} {'OOS rec':>8} {'false-fb':>8} {'macro-F1':>8} {'complain R':>10}"
    )
    by_t: Dict[float, List[Dict[str, Any]]] = defaultdict(list)
    for r in sweep["rows"]:
        by_t[r["threshold"]].append(r)
    for t in sorted(by_t):
        rows = by_t[t]
        feas = [
            r
            for r in rows
            if (r["false_fallback_rate"] or 0) <= sweep["max_false_fallback"] + 1e-12
        ]
        r = (
            max(feas, key=_sweep_key)
            if feas
            else min(rows, key=lambda r: r["false_fallback_rate"] or 0)
        )
        mark = " <= best" if sweep["best"] is r else ("" if feas else "  (over the limit)")
        lines.append(
            f"  {t:>9.2f} {r['ambiguity_threshold']:>9.2f} {_f(r['oos_recall'], True):>8} "
            f"{_f(r['false_fallback_rate'], True):>8} {r['macro_f1']:>8.3f} "
            f"{_f(r['complain_recall']):>10}{mark}"
        )
    if current:
        cur = [
            r
            for r in sweep["rows"]
            if abs(r["threshold"] - current[0]) < 1e-9
            and abs(r["ambiguity_threshold"] - current[1]) < 1e-9
        ]
        if cur:
            r = cur[0]
            lines.append(
                f"  current config ({current[0]}, {current[1]}): OOS {_f(r['oos_recall'], True)}, "
                f"false-fb {_f(r['false_fallback_rate'], True)}, macro-F1 {r['macro_f1']:.3f}"
            )
    b = sweep["best"]
    if b:
        lines.append(
            f"Recommended: FallbackClassifier threshold {b['threshold']:.2f}, "
            f"ambiguity_threshold {b['ambiguity_threshold']:.2f} "
            f"(OOS recall {_f(b['oos_recall'], True)}, false-fallback {_f(b['false_fallback_rate'], True)}, "
            f"macro-F1 {b['macro_f1']:.3f})"
        )
    else:
        lines.append("No threshold pair keeps false-fallback under the limit.")
    return "\n".join(lines)


# ============================================================================================
# running the model
# ============================================================================================
def quiet_rasa() -> None:
    """Keep Rasa, TensorFlow, jieba and matplotlib from burying the report in log lines."""
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    warnings.filterwarnings("ignore")
    if "rasa" in sys.modules:
        try:
            from rasa.utils.log_utils import configure_structlog

            configure_structlog(logging.WARNING)
        except Exception:  # pragma: no cover - older/newer Rasa
            pass
    for name in ("rasa", "tensorflow", "absl", "jieba", "matplotlib", "sanic", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import jieba

        jieba.setLogLevel(logging.ERROR)
    except Exception:  # pragma: no cover
        pass


def load_agent(model_path: str) -> Any:
    quiet_rasa()
    if not Path(model_path).exists():
        raise SystemExit(f"model not found: {model_path} (train it: make train)")
    from rasa.core.agent import Agent

    agent = Agent.load(model_path)
    quiet_rasa()  # Rasa resets its log levels on import
    return agent


def _prediction_from_parse(result: Dict[str, Any], ms: float) -> Prediction:
    ranking = [
        (r["name"], float(r.get("confidence") or 0.0))
        for r in result.get("intent_ranking") or []
        if r.get("name") != NLU_FALLBACK
    ]
    intent = result.get("intent") or {}
    if not ranking and intent.get("name") and intent.get("name") != NLU_FALLBACK:
        ranking = [(intent["name"], float(intent.get("confidence") or 0.0))]
    return Prediction(
        intent=intent.get("name") or NLU_FALLBACK,
        confidence=float(intent.get("confidence") or 0.0),
        ranking=ranking,
        entities=[
            {k: e.get(k) for k in ("entity", "start", "end", "value", "extractor")}
            for e in result.get("entities") or []
        ],
        text=result.get("text") or "",
        ms=ms,
        raised_complaint=bool((result.get("complaint_second_opinion") or {}).get("raised")),
    )


async def predict_async(agent: Any, texts: Sequence[str], warmup: int = 3) -> List[Prediction]:
    for t in list(texts)[:warmup]:  # first calls build TF graphs / load jieba: not measured
        await agent.parse_message(t)
    out = []
    for t in texts:
        t0 = time.perf_counter()
        result = await agent.parse_message(t)
        out.append(_prediction_from_parse(result, 1000 * (time.perf_counter() - t0)))
    return out


def predict(agent: Any, texts: Sequence[str]) -> List[Prediction]:
    return asyncio.run(predict_async(agent, texts))


def write_rasa_nlu(examples: Sequence[Example], path: Path) -> None:
    """Write examples as a Rasa NLU YAML file (for Rasa's own evaluation)."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    msgs = [
        Message(
            data={
                "text": e.text,
                "intent": e.intent,
                **({"entities": e.entities} if e.entities else {}),
            }
        )
        for e in examples
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    RasaYAMLWriter().dump(str(path), TrainingData(training_examples=msgs))


def run_rasa_report(agent: Any, data_path: Path, out_dir: Path) -> Dict[str, Any]:
    """Rasa's own `rasa test nlu` evaluation with the already loaded model."""
    from rasa.nlu.test import run_evaluation

    import contextlib

    out_dir.mkdir(parents=True, exist_ok=True)
    domain = "domain.yml" if Path("domain.yml").exists() else None
    # Rasa prints its reports, a progress bar and warnings: they go to a log file next to them.
    with (
        open(out_dir / "rasa_test.log", "w", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        res = asyncio.run(
            run_evaluation(
                str(data_path),
                agent.processor,
                output_directory=str(out_dir),
                successes=False,
                errors=True,
                disable_plotting=False,
                report_as_dict=True,
                domain_path=domain,
            )
        )
    quiet_rasa()
    return res


def fallback_thresholds_of(agent: Any) -> Optional[Tuple[float, float]]:
    """The FallbackClassifier's (threshold, ambiguity_threshold) in the loaded model, if any."""
    try:
        for node in agent.processor.graph_runner._graph_schema.nodes.values():  # noqa: SLF001
            if node.uses.__name__ == "FallbackClassifier":
                cfg = node.config
                return float(cfg.get("threshold", 0.3)), float(cfg.get("ambiguity_threshold", 0.1))
    except Exception:  # pragma: no cover - internal structure of Rasa
        return None
    return None


def evaluate_model(
    agent: Any,
    examples: Sequence[Example],
    synonyms: Optional[Dict[str, str]] = None,
    traditional: bool = True,
) -> Dict[str, Any]:
    """Predict and summarise the set as written and (optionally) converted to traditional."""
    normalize = _default_normalize()
    preds = predict(agent, [e.text for e in examples])
    result = {"simplified": summarize(examples, preds, normalize, synonyms), "_preds": preds}
    if traditional:
        trad_ex = [convert_example(e, to_traditional) for e in examples]
        tpreds = predict(agent, [e.text for e in trad_ex])
        result["traditional"] = summarize(trad_ex, tpreds, normalize, synonyms)
        result["_trad_examples"] = trad_ex
        result["_trad_preds"] = tpreds
    return result


def write_predictions(
    path: Path,
    examples: Sequence[Example],
    preds: Sequence[Prediction],
    variant: str,
    mode: str = "w",
) -> None:
    with open(path, mode, encoding="utf-8") as fh:
        for e, p in zip(examples, preds):
            fh.write(
                json.dumps(
                    {
                        "variant": variant,
                        "text": e.text,
                        "intent": e.intent,
                        "predicted": p.intent,
                        "correct": effective_intent(p.intent) == e.intent,
                        "confidence": round(p.confidence, 4),
                        "ranking": [[n, round(c, 4)] for n, c in p.ranking[:3]],
                        "gold_entities": e.entities,
                        "entities": p.entities,
                        "ms": round(p.ms, 2),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )


def rss_mb() -> Optional[float]:
    """Resident memory of this process (the loaded model, as a Rasa server holds it) in MB."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def full_training_seconds() -> Optional[Dict[str, Any]]:
    """The last full (empty-cache) training time of config.yml on the current inputs, if known
    (recorded by `make train` on an empty Rasa cache, or by `make bench`)."""
    try:
        from bench.train import TIMINGS, inputs_hash, OURS_CONFIG

        rec = json.loads(Path(TIMINGS).read_text(encoding="utf-8")).get("ours")
        if rec and rec.get("hash") == inputs_hash(OURS_CONFIG):
            return rec
    except Exception:  # no record yet, or another checkout
        return None
    return None


def check_process_targets(figures: Dict[str, Optional[float]]) -> Dict[str, Optional[bool]]:
    res: Dict[str, Optional[bool]] = {}
    for key, (op, val) in PROCESS_TARGETS.items():
        v = figures.get(key)
        res[key] = None if v is None else (v >= val if op == ">=" else v <= val)
    return res


HEADLINE = [
    ("macro-F1", "macro_f1", False),
    ("complain R", "complain_recall", False),
    ("praise->complain", "praise_as_complain_rate", True),
    ("OOS R", "oos_recall", False),
    ("false-fb", "false_fallback_rate", True),
    ("thanks/bye R", "closing_recall", False),
    ("amenity R", "amenity_recall", False),
    ("entity F1", "entity_f1", False),
    ("p95 ms", "p95_ms", None),
]


def format_headline(summaries: Dict[str, Dict[str, Any]], process: Dict[str, Any]) -> str:
    """Every target figure of every evaluated set, simplified and traditional, on one screen."""
    lines = ["== Targets on every evaluated set (simplified / traditional) =="]
    names = list(summaries)
    width = max([24] + [len(n) + 2 for n in names])
    lines.append(f"  {'figure':18}{'target':>9}  " + "".join(f"{n:>{width}}" for n in names))
    for label, key, pct in HEADLINE:
        cells = []
        for n in names:
            vals = []
            for variant in ("simplified", "traditional"):
                v = (summaries[n].get(variant) or {}).get(key)
                vals.append(_ms1(v) if pct is None else _f(v, pct).strip())
            ok = [
                summaries[n]["targets_met"].get(key),
                summaries[n].get("targets_met_traditional", {}).get(key),
            ]
            flag = (
                ""
                if all(o is None for o in ok)
                else ("" if all(o in (True, None) for o in ok) else " !")
            )
            cells.append(f"{' / '.join(vals)}{flag}")
        lines.append(
            f"  {label:18}{_target_text(key):>9}  " + "".join(f"{c:>{width}}" for c in cells)
        )
    checks = check_process_targets(process)
    rss = process.get("rss_mb")
    lines.append(
        f"  {'RSS MB (this process, model loaded)':36}{_ms1(rss):>8}   {_target_text('rss_mb'):<7}"
        f"{_mark(checks.get('rss_mb'))}"
    )
    tr = process.get("full_training_s")
    lines.append(
        f"  {'full training s (rasa train, empty cache)':42}{_ms1(tr):>8}   "
        f"{_target_text('full_training_s'):<7}{_mark(checks.get('full_training_s'))}"
        + (
            ""
            if tr is not None
            else "  (none recorded for these inputs: make bench, or make train on an empty .rasa/cache)"
        )
    )
    lines.append(
        "  ('!' = a target missed in that set; praise->complain and false-fb are rates, lower is better)"
    )
    return "\n".join(lines)


def evaluate_source(
    agent: Any, source: str, out: Path, args: Any, synonyms: Dict[str, str], load_s: float
) -> Optional[Dict[str, Any]]:
    """Evaluate one set, print its full report, write its results into ``out``."""
    try:
        examples = load_examples(source)
    except (InputFormatError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    out.mkdir(parents=True, exist_ok=True)
    res = evaluate_model(agent, examples, synonyms, traditional=not args.no_traditional)
    simpl, trad = res["simplified"], res.get("traditional")
    current = fallback_thresholds_of(agent)

    print(format_report(simpl, trad, title=f"{source} with {args.model}"))
    print()
    print(format_histogram(simpl["confidence_histogram"]))
    print()
    sweep = sweep_thresholds([e.intent for e in examples], [p.ranking for p in res["_preds"]])
    if args.sweep:
        print(format_sweep(sweep, current))
    else:
        b = sweep["best"]
        if b and b["oos_recall"] is not None:
            print(
                f"Fallback thresholds in the model: {current}; best on this set (python -m "
                f"bot.nlu.evaluate --sweep): threshold {b['threshold']:.2f}, ambiguity "
                f"{b['ambiguity_threshold']:.2f} -> OOS recall {_f(b['oos_recall'], True)}, "
                f"false-fallback {_f(b['false_fallback_rate'], True)}"
            )

    write_predictions(out / "predictions.jsonl", examples, res["_preds"], "simplified")
    if trad:
        write_predictions(
            out / "predictions.jsonl",
            res["_trad_examples"],
            res["_trad_preds"],
            "traditional",
            mode="a",
        )
    rasa_dirs = {}
    if not args.no_rasa_report:
        data_path = Path(source)
        if args.input:
            data_path = out / "input_as_rasa.yml"
            write_rasa_nlu(examples, data_path)
        run_rasa_report(agent, data_path, out / "rasa")
        rasa_dirs["simplified"] = str(out / "rasa")
        if trad:
            tpath = out / "holdout_traditional.yml"
            write_rasa_nlu(res["_trad_examples"], tpath)
            run_rasa_report(agent, tpath, out / "rasa_traditional")
            rasa_dirs["traditional"] = str(out / "rasa_traditional")

    summary = {
        "model": args.model,
        "input": source,
        "model_load_seconds": round(load_s, 2),
        "git_head": git_head(),
        "data_fingerprint": data_fingerprint(args.nlu_data, source),
        "fallback_thresholds": current,
        "targets": {k: list(v) for k, v in TARGETS.items()},
        "targets_met": check_targets(simpl, trad),
        "targets_met_traditional": check_targets(trad, None) if trad else {},
        "simplified": simpl,
        "traditional": trad,
        "recommended_thresholds": sweep["best"],
        "rasa_reports": rasa_dirs,
    }
    (out / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    print()
    print(
        f"Written: {out / 'summary.json'}, {out / 'predictions.jsonl'}"
        + (
            f", Rasa reports and confusion matrix in {', '.join(rasa_dirs.values())}"
            if rasa_dirs
            else ""
        )
    )
    print()
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bot.nlu.evaluate", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"trained model (default {DEFAULT_MODEL})"
    )
    ap.add_argument(
        "--input",
        help='a .jsonl file of {"text", "intent"[, "entities"]} lines '
        "(default: the holdout sets)",
    )
    ap.add_argument(
        "--holdout",
        action="append",
        help="Rasa NLU YAML held-out set; repeat for several (default: "
        + ", ".join(DEFAULT_HOLDOUTS)
        + ", those that exist)",
    )
    ap.add_argument(
        "--nlu-data", default=DEFAULT_NLU_DATA, help="training data (for entity synonyms)"
    )
    ap.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"results folder (default {DEFAULT_OUT}; one "
        "sub-folder per set when there are several)",
    )
    ap.add_argument(
        "--no-traditional", action="store_true", help="skip the traditional-character pass"
    )
    ap.add_argument(
        "--no-rasa-report", action="store_true", help="skip Rasa's own reports and plots"
    )
    ap.add_argument("--sweep", action="store_true", help="print the full fallback threshold sweep")
    args = ap.parse_args(argv)
    import warnings

    warnings.showwarning = (
        lambda *a, **k: None
    )  # Rasa re-enables warnings on import; we do not want them
    quiet_rasa()

    if args.input:
        sources = [args.input]
    else:
        sources = (
            args.holdout or [h for h in DEFAULT_HOLDOUTS if Path(h).exists()] or [DEFAULT_HOLDOUT]
        )
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        print(f"error: {missing[0]}: no such file", file=sys.stderr)
        return 2
    # Fail on a malformed set before the (slow) model load.
    for src in sources:
        try:
            load_examples(src)
        except (InputFormatError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    out = Path(args.out)

    t0 = time.perf_counter()
    agent = load_agent(args.model)
    load_s = time.perf_counter() - t0
    synonyms = load_synonyms(args.nlu_data)
    summaries: Dict[str, Dict[str, Any]] = {}
    for src in sources:
        name = Path(src).parent.name if len(sources) > 1 else Path(src).stem
        sub = out / Path(src).parent.name if len(sources) > 1 else out
        summary = evaluate_source(agent, src, sub, args, synonyms, load_s)
        if summary is None:
            return 2
        summaries[name] = summary
    training = full_training_seconds()
    process = {"rss_mb": rss_mb(), "full_training_s": training.get("seconds") if training else None}
    print(format_headline(summaries, process))
    (out / "process.json").write_text(
        json.dumps(
            {**process, "training_record": training, "targets_met": check_process_targets(process)},
            indent=2,
        ),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

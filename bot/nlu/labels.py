"""Writing a labelled message into the NLU training data (data/nlu/<topic>.yml).

The example goes into the topic file that already holds its intent, as one new line at the end
of that intent's `examples: |` block: the rest of the file is untouched, so a reviewer's diff is
exactly that line. Entities use Rasa's markup (`[泳池]{"entity": "amenity", "value": "pool"}`).
The edited file is re-read with Rasa's own YAML reader before it replaces the old one; if Rasa
would not read the line back as the same text, intent and entities, nothing is written.

Refused, with the reason (`LabelRefused`):
- a text that is in the held-out set (tests/nlu_holdout) under the same comparison key as
  tests/nlu/test_data_hygiene.py uses: training on it would leak the test;
- an intent the domain does not declare;
- a text already in the training data under another intent (two answers for one text);
- an entity whose text is not in the message.
A text already in the training data under the same intent is not written twice (`written=False`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import yaml

from bot.nlu.normalizer import normalize

FALLBACK_FILE = "labelled.yml"  # for an intent that has no topic file yet
_INTENT_LINE = re.compile(r"^- intent:\s*(\S+)\s*$")
_EXAMPLE_LINE = re.compile(r"^(\s+)- ")


class LabelRefused(ValueError):
    """The label cannot be written; the message says why."""


@dataclass(frozen=True)
class Entity:
    entity: str
    text: str  # the span as it appears in the message
    value: Optional[str] = None  # canonical value, when it differs from the span


@dataclass(frozen=True)
class LabelResult:
    file: Path
    line: str
    written: bool  # False: the same example was already there


def key(text: str) -> str:
    """The comparison key of tests/nlu/test_data_hygiene.py (NFKC, normalised, no whitespace)."""
    return re.sub(r"\s+", "", normalize(unicodedata.normalize("NFKC", text.strip())))


def _examples(path: Path) -> Iterator[tuple[str, str]]:
    """(intent, plain text) of every example in one Rasa NLU YAML file, entity markup removed by
    Rasa's own entity parser. PyYAML's C loader: ~100x faster than Rasa's full reader, which only
    the edited file goes through (`_check`)."""
    from rasa.shared.nlu.training_data.entities_parser import replace_entities

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
    for entry in data.get("nlu") or []:
        if not isinstance(entry, dict) or "intent" not in entry:
            continue
        for line in str(entry.get("examples") or "").splitlines():
            line = line.strip()
            if line.startswith("- "):
                yield str(entry["intent"]), replace_entities(line[2:].strip())


def _rasa_examples(path: Path) -> Iterator[tuple[str, str]]:
    """The same with Rasa's full YAML reader (validates the file as training will)."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    data = RasaYAMLReader().reads(path.read_text(encoding="utf-8"))
    for msg in data.intent_examples:
        yield msg.get("intent"), msg.get("text")


def count_examples(nlu_dir: Path) -> int:
    """How many intent examples Rasa reads from the folder (raises on a file it cannot read)."""
    return sum(1 for path in sorted(Path(nlu_dir).glob("*.yml")) for _ in _rasa_examples(path))


# The second held-out set (issue 17) lives beside the first; neither may reach training.
INDEPENDENT_HOLDOUT = "nlu_holdout_independent"


def held_out_intent(text: str, holdout_dir: Path) -> Optional[tuple[str, Path]]:
    k = key(text)
    holdout_dir = Path(holdout_dir)
    paths = sorted(holdout_dir.glob("*.yml")) + sorted(
        (holdout_dir.parent / INDEPENDENT_HOLDOUT).glob("*.yml")
    )
    for path in paths:
        for intent, example in _examples(path):
            if key(example) == k:
                return intent, path
    return None


def domain_intents(domain_path: Path) -> set[str]:
    data = yaml.safe_load(domain_path.read_text(encoding="utf-8")) or {}
    intents = set()
    for entry in data.get("intents") or []:
        intents.add(next(iter(entry)) if isinstance(entry, dict) else str(entry))
    return intents


def markup(text: str, entities: Sequence[Entity]) -> str:
    """The example line's text with Rasa's entity markup; the first occurrence of each span."""
    out, pos = [], 0
    spans = []
    for ent in entities:
        start = text.find(ent.text) if ent.text else -1
        if not ent.text or start < 0:
            raise LabelRefused(f"entity {ent.entity}: {ent.text!r} is not in the message {text!r}")
        spans.append((start, start + len(ent.text), ent))
    spans.sort(key=lambda s: s[0])
    for (s1, e1, _), (s2, _, _) in zip(spans, spans[1:]):
        if s2 < e1:
            raise LabelRefused("entities overlap")
    for start, end, ent in spans:
        out.append(text[pos:start])
        if ent.value is None or ent.value == ent.text:
            out.append(f"[{ent.text}]({ent.entity})")
        else:
            meta = json.dumps({"entity": ent.entity, "value": ent.value}, ensure_ascii=False)
            out.append(f"[{ent.text}]{meta}")
        pos = end
    out.append(text[pos:])
    return "".join(out)


@contextmanager
def _locked(nlu_dir: Path) -> Iterator[None]:
    with open(nlu_dir / ".label.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _insert(lines: list[str], intent: str, example: str) -> Optional[list[str]]:
    """The file's lines with `example` appended to the intent's examples block (None: no block)."""
    for i, line in enumerate(lines):
        match = _INTENT_LINE.match(line.rstrip("\n"))
        if not match or match.group(1) != intent:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("examples:"):
            if _INTENT_LINE.match(lines[j].rstrip("\n")) or lines[j].startswith("- "):
                return None
            j += 1
        last, indent = None, "    "
        k = j + 1
        while k < len(lines):
            raw = lines[k]
            if raw.strip() and not raw.startswith((" ", "\t")):
                break  # the next top-level entry
            ex = _EXAMPLE_LINE.match(raw)
            if ex:
                last, indent = k, ex.group(1)
            k += 1
        if last is None:
            return None
        new = f"{indent}- {example}\n"
        if not lines[last].endswith("\n"):
            lines[last] += "\n"
        return lines[: last + 1] + [new] + lines[last + 1 :]
    return None


def add_example(
    text: str,
    intent: str,
    *,
    nlu_dir: Path,
    holdout_dir: Path,
    domain_path: Path,
    entities: Sequence[Entity] = (),
) -> LabelResult:
    """Write one labelled example (see the module docstring for what is refused)."""
    text = " ".join(text.split())
    if not text:
        raise LabelRefused("the text is empty")
    if "\n" in text or text.startswith(("/", "#")):
        raise LabelRefused("a training example is one line of guest text")
    if intent not in domain_intents(domain_path):
        raise LabelRefused(f"intent {intent!r} is not in {domain_path.name}")
    held = held_out_intent(text, holdout_dir)
    if held is not None:
        raise LabelRefused(
            f"this text is in the held-out set ({held[1].name}, as {held[0]}): training on it "
            "would leak the test that every model version is measured on"
        )
    example = markup(text, entities)
    k = key(text)
    with _locked(nlu_dir):
        target = None
        for path in sorted(nlu_dir.glob("*.yml")):
            for have_intent, have_text in _examples(path):
                if key(have_text) == k:
                    if have_intent == intent:
                        return LabelResult(path, example, written=False)
                    raise LabelRefused(
                        f"this text is already a {have_intent} example in "
                        f"{path.name}; change it there if it is wrong"
                    )
                if target is None and have_intent == intent:
                    target = path
        if target is None:
            target = nlu_dir / FALLBACK_FILE
        old = target.read_text(encoding="utf-8") if target.exists() else 'version: "3.1"\nnlu:\n'
        lines = old.splitlines(keepends=True)
        new_lines = _insert(lines, intent, example)
        if new_lines is None:  # no block for this intent in the file yet: a new one at the end
            tail = "" if old.endswith("\n") else "\n"
            new_lines = [*lines, f"{tail}- intent: {intent}\n  examples: |\n    - {example}\n"]
        new = "".join(new_lines)
        _check(new, old, intent, text, entities)
        fd, tmp = tempfile.mkstemp(dir=nlu_dir, prefix=".label-", suffix=".yml")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.replace(tmp, target)
    return LabelResult(target, example, written=True)


def _check(new: str, old: str, intent: str, text: str, entities: Sequence[Entity]) -> None:
    """Rasa reads the new file as the old one plus exactly this example."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    reader = RasaYAMLReader()
    try:
        before = reader.reads(old).intent_examples if old.strip() else []
        after = reader.reads(new).intent_examples
    except Exception as exc:  # Rasa's YAML errors come in several types
        raise LabelRefused(f"Rasa could not read the file with this example: {exc}") from None
    added = [
        msg
        for msg in after
        if (msg.get("intent"), msg.get("text"))
        not in {(b.get("intent"), b.get("text")) for b in before}
    ]
    if len(after) != len(before) + 1 or len(added) != 1:
        raise LabelRefused("Rasa would not read this example back as one new example")
    msg = added[0]
    if msg.get("intent") != intent or msg.get("text") != text:
        raise LabelRefused(f"Rasa would read this example as {msg.get('text')!r}, not {text!r}")
    got = sorted((e["entity"], e.get("value")) for e in msg.get("entities") or [])
    want = sorted((e.entity, e.value or e.text) for e in entities)
    if got != want:
        raise LabelRefused(f"Rasa would read the entities as {got}, not {want}")

"""Sampling profiles of the servers under load (py-spy, attached to the running processes) and a
summary of where the busy time goes, by component.

`py-spy record --format raw` writes collapsed stacks ("frame;frame;frame count", root first).
Each sample is charged to the *outermost* frame that matches a specific category (a component, a
policy, the tracker store, the call to the action server...: so SQLAlchemy under the tracker store
counts as the tracker store, TensorFlow under DIET as DIET); then the connector's own work (its
frames wrap all of Rasa's for a WeCom message); a sample under none of them goes to
the deepest generic category (SQLAlchemy, Sanic, the message processor, the event loop...), else
"other". Samples whose innermost frame is a known wait (the event loop's select, an idle worker
thread) are counted apart as idle: py-spy's own idle detection misses them in some containers.
Shares are of the busy samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

PY_SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")

# (category, regex on a frame "function (path:line)"). Specific ones are looked for from the root
# down; GENERIC ones (below) only when no specific one matched, from the leaf up.
RASA_CATEGORIES: List[Tuple[str, str]] = [
    ("NLU ChineseNormalizer (OpenCC)", r"bot/nlu/normalizer|opencc"),
    ("NLU JiebaTokenizer", r"jieba_tokenizer|/jieba/"),
    ("NLU RegexFeaturizer", r"regex_featurizer"),
    ("NLU LexicalSyntacticFeaturizer", r"lexical_syntactic"),
    ("NLU CountVectorsFeaturizer", r"count_vectors_featurizer"),
    ("NLU LogisticRegressionClassifier", r"logistic_regression_classifier"),
    ("NLU DIETClassifier", r"diet_classifier"),
    ("NLU ResponseSelector", r"response_selector"),
    ("NLU CRFEntityExtractor", r"crf_entity_extractor"),
    ("NLU RegexEntityExtractor", r"regex_entity_extractor"),
    ("NLU FallbackClassifier", r"fallback_classifier"),
    ("NLU other (synonyms, message)", r"rasa/nlu/|rasa/shared/nlu/"),
    ("policy TEDPolicy", r"ted_policy"),
    ("policy UnexpecTEDIntentPolicy", r"unexpected_intent_policy"),
    ("policy RulePolicy", r"rule_policy"),
    ("policy MemoizationPolicy", r"policies/memoization"),
    ("policy featurization/ensemble", r"rasa/core/featurizers|rasa/core/policies|policy_ensemble"),
    ("graph runner / model", r"rasa/engine/"),
    ("tracker store (SQL)", r"tracker_store\.py"),
    ("lock store", r"lock_store\.py"),
    # RemoteAction.run: the tracker state as JSON, the HTTP call, jsonschema validation of the
    # answer, the events applied; also the built-in utter_ actions (same module).
    (
        "running actions (remote call to the action server, utterances)",
        r"rasa/core/actions/|rasa/utils/endpoints|aiohttp/client",
    ),
    (
        "tracker: events/slots/serialisation",
        r"rasa/shared/core/(trackers|events|domain|slots)|rasa/shared/core/conversation",
    ),
    ("responses / NLG", r"rasa/core/nlg|templated_natural_language"),
    ("WeCom connector (crypto, inbox, API)", r"connectors/wecom|bot/wecom/|wechatpy|cryptography"),
    ("message processor / agent", r"rasa/core/processor|rasa/core/agent|rasa/core/channels"),
    ("HTTP server (sanic) / JSON", r"sanic/|ujson|json/"),
    ("SQLAlchemy (other)", r"sqlalchemy"),
    ("asyncio event loop", r"asyncio/"),
]

ACTIONS_CATEGORIES: List[Tuple[str, str]] = [
    ("CRM store (SQLAlchemy)", r"bot/crm/|sqlalchemy"),
    ("knowledge base / weather", r"bot/knowledge/"),
    ("pre-trip answers", r"bot/pretrip"),
    ("orders (JioNLP dates)", r"bot/orders/|jionlp|jiojio"),
    (
        "complaints / preferences / handoff",
        r"bot/complaints|bot/preferences|bot/handoff|bot/paging|bot/privacy",
    ),
    ("templates (Jinja2)", r"jinja2|bot/templates|bot/replies"),
    ("actions (thin layer)", r"/actions/"),
    ("rasa_sdk (executor, tracker)", r"rasa_sdk/"),
    ("HTTP server (sanic) / JSON", r"sanic/|ujson|json/"),
    ("thread pool", r"concurrent/futures|threading"),
    ("asyncio event loop", r"asyncio/"),
]


GENERIC = {
    "graph runner / model",
    "policy featurization/ensemble",
    "message processor / agent",
    "HTTP server (sanic) / JSON",
    "SQLAlchemy (other)",
    "asyncio event loop",
    "rasa_sdk (executor, tracker)",
    "thread pool",
}

# Specific, but wrapping other specific ones: only when none of those is in the stack.
WRAPPERS = {"WeCom connector (crypto, inbox, API)", "pre-trip answers"}

# Innermost frames of threads that are waiting, not working.
IDLE_LEAVES = re.compile(
    r"^(serve \(sanic/server/runners|run_forever|_run_once \(asyncio/base_events|select \(selectors|"
    r"_worker \(concurrent/futures/thread|wait \(threading|_wait_for_tstate_lock|poll \(|epoll)"
)


def available() -> bool:
    return PY_SPY is not None


def start_record(
    pid: int, out: Path, duration_s: float, rate: int = 67
) -> Optional[subprocess.Popen]:
    """py-spy record of `pid` for `duration_s`, collapsed stacks to `out` (.txt)."""
    if PY_SPY is None:
        return None
    args = [
        PY_SPY,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(round(duration_s)))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(str(out) + ".log", "w"))


def read_collapsed(path: Path) -> List[Tuple[List[str], int]]:
    samples = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples.append((stack.split(";"), int(count)))
    return samples


def is_idle(frames: Sequence[str]) -> bool:
    return bool(frames) and bool(IDLE_LEAVES.search(_short(frames[-1])))


def categorize(
    samples: Sequence[Tuple[List[str], int]], categories: Sequence[Tuple[str, str]]
) -> Counter:
    """Busy samples per category (idle ones under the key "(idle)")."""
    specific = [(n, re.compile(p)) for n, p in categories if n not in GENERIC and n not in WRAPPERS]
    wrappers = [(n, re.compile(p)) for n, p in categories if n in WRAPPERS]
    generic = [(n, re.compile(p)) for n, p in categories if n in GENERIC]
    out: Counter = Counter()
    for frames, count in samples:
        if is_idle(frames):
            out["(idle)"] += count
            continue
        name = None
        for frame in frames:  # root first: the outermost specific owner
            name = next((n for n, rx in specific if rx.search(frame)), None)
            if name:
                break
        if name is None:  # the connector's own work (its frames wrap Rasa's for a WeCom message)
            for frame in reversed(frames):
                name = next((n for n, rx in wrappers if rx.search(frame)), None)
                if name:
                    break
        if name is None:
            for frame in reversed(frames):
                name = next((n for n, rx in generic if rx.search(frame)), None)
                if name:
                    break
        out[name or "other"] += count
    return out


def top_functions(
    samples: Sequence[Tuple[List[str], int]],
    n: int = 25,
    include: str = r"rasa/|rasa_sdk/|bot/|actions/|connectors/|sqlalchemy|jieba|sklearn|"
    r"tensorflow|sanic|opencc|jionlp|jinja2",
    exclude: str = r"^(run|main|serve|serve_single|serve_application|main_from_args|run_actions|"
    r"http1|handler|_run_once|run_forever) \(",
) -> List[Tuple[str, int]]:
    """Inclusive sample counts of the project's and the main libraries' functions (without the
    frames every request goes through: server loops, CLI entry points)."""
    rx, skip = re.compile(include), re.compile(exclude)
    inclusive: Counter = Counter()
    for frames, count in samples:
        if is_idle(frames):
            continue
        for frame in set(frames):
            short = _short(frame)
            if rx.search(frame) and not skip.search(short):
                inclusive[short] += count
    return inclusive.most_common(n)


def _short(frame: str) -> str:
    frame = re.sub(r"\(/[^)]*site-packages/", "(", frame)
    return re.sub(r"\(/work/main/", "(", frame)


def is_main_thread(frames: Sequence[str]) -> bool:
    """The event loop's thread (the process's main thread): everything Rasa does per message runs
    there one at a time; the other threads are executor workers (database calls of the connector
    and the CRM store), TensorFlow's, py-spy cannot tell idle waits of those from work."""
    return bool(frames) and ("_run_module_as_main" in frames[0] or frames[0].startswith("<module>"))


def _shares(cats: Counter) -> List[Dict]:
    total = sum(cats.values())
    return [
        {"category": k, "samples": v, "share": round(v / total, 3) if total else 0}
        for k, v in cats.most_common()
    ]


def summarize(path: Path, categories: Sequence[Tuple[str, str]]) -> Dict:
    samples = read_collapsed(path) if path.exists() else []
    cats = categorize(samples, categories)
    idle = cats.pop("(idle)", 0)
    total = sum(cats.values())
    main = categorize([s for s in samples if is_main_thread(s[0])], categories)
    main_idle = main.pop("(idle)", 0)
    workers = categorize([s for s in samples if not is_main_thread(s[0])], categories)
    workers.pop("(idle)", None)
    return {
        "file": str(path),
        "samples": total,
        "idle_samples": idle,
        "main_thread": {
            "busy": sum(main.values()),
            "idle": main_idle,
            "by_category": _shares(main),
        },
        "other_threads": {"busy": sum(workers.values()), "by_category": _shares(workers)},
        "by_category": _shares(cats),
        "top_functions": [
            {"function": f, "samples": c, "share": round(c / total, 3) if total else 0}
            for f, c in top_functions(samples)
        ],
    }


def format_summary(title: str, summary: Dict, top: int = 12) -> str:
    main, other = summary.get("main_thread") or {}, summary.get("other_threads") or {}
    lines = [
        f"{title} ({summary['file']})",
        f"  event-loop thread: {main.get('busy', 0)} busy samples, {main.get('idle', 0)} idle; "
        f"other threads: {other.get('busy', 0)} samples (executor/DB waits count as busy)",
        "  event-loop thread, busy time by owner:",
    ]
    for row in main.get("by_category", []):
        if row["share"] >= 0.003:
            lines.append(f"  {row['share'] * 100:5.1f}%  {row['category']}")
    if other.get("busy"):
        lines.append("  other threads:")
        for row in other.get("by_category", [])[:6]:
            lines.append(f"  {row['share'] * 100:5.1f}%  {row['category']}")
    lines.append("  top functions (inclusive):")
    for row in summary["top_functions"][:top]:
        lines.append(f"  {row['share'] * 100:5.1f}%  {row['function'][:110]}")
    return "\n".join(lines)

"""The data files admins edit (knowledge base, add-on catalogue, SLA policy, complaint rules,
preference vocabulary, NLU training data): one validation for all of them, and the live
(reload-on-change) versions the running processes use.

`concierge data check` runs `check_all()`: every file is loaded by the same code that serves
guests, so "ok" means the running bot will accept it. The processes hold `Live` values
(bot.live): an edit takes effect within seconds, without a restart; an edit that fails
validation is refused in the log and the running version stays.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from bot.live import Live
from bot.settings import PROJECT_ROOT, Settings


@dataclass(frozen=True)
class Check:
    name: str
    path: str
    ok: bool
    detail: str  # what was loaded, or why it was refused


def _read_kb(directory: Path):
    from bot.knowledge.kb import PACKING_RULES_FILE, KnowledgeBase
    from bot.knowledge.packing import PackingRules, _load_rules

    kb = KnowledgeBase.read(directory)
    _load_rules.cache_clear()  # the packing rules live in the same folder: reread them too
    PackingRules.load(Path(directory) / PACKING_RULES_FILE)
    return kb


def live_knowledge_base(directory: Path) -> Live:
    return Live(lambda: _read_kb(Path(directory).resolve()), [directory], name="knowledge base")


def live_catalogue(directory: Optional[Path] = None) -> Live:
    from bot.orders.catalogue import CATALOGUE_DIR, Catalogue

    directory = Path(directory or CATALOGUE_DIR)
    return Live(lambda: Catalogue.load(directory), [directory], name="add-on catalogue")


@functools.lru_cache(maxsize=4)
def live_policy(path: str) -> Live:
    """One live SLA policy per file and process (what bot.paging.runtime.get_policy serves)."""
    from bot.paging.policy import load_policy

    return Live(lambda: load_policy(path), [Path(path)], name="SLA policy")


def _checks(settings: Settings, root: Path) -> list[tuple[str, Path, Callable[[], str]]]:
    def kb() -> str:
        loaded = _read_kb(Path(settings.knowledge_dir).resolve())
        return f"{len(loaded.properties())} properties, {len(loaded.vocabulary)} amenities"

    def catalogue() -> str:
        from bot.orders.catalogue import CATALOGUE_DIR, Catalogue

        loaded = Catalogue.load(CATALOGUE_DIR)
        return f"{len(loaded.items)} items"

    def policy() -> str:
        from bot.paging.policy import load_policy

        loaded = load_policy(settings.sla_policy_file)
        return f"{len(loaded.properties)} properties; classes {', '.join(loaded.classes)}"

    def complaints() -> str:
        from bot.complaints.classifier import RULES_FILE, load_rules

        load_rules.cache_clear()
        loaded = load_rules(RULES_FILE)
        return f"{len(loaded.categories)} categories"

    def vocabulary() -> str:
        from bot.preferences.vocabulary import VOCABULARY_FILE, load_vocabulary

        load_vocabulary(VOCABULARY_FILE)
        return "ok"

    def nlu() -> str:
        from bot.nlu.labels import count_examples

        return f"{count_examples(root / 'data' / 'nlu')} examples (Rasa's reader)"

    def second_opinion() -> str:
        from bot.complaints.second_opinion import CUES_FILE, load_cues

        loaded = load_cues(CUES_FILE)
        return f"{len(loaded.strong)} strong, {len(loaded.weak)} weak cues"

    def near_domain() -> str:
        from bot.scope import NEAR_DOMAIN_FILE, load_near_domain

        return f"{len(load_near_domain(NEAR_DOMAIN_FILE).replies)} categories"

    def second_requests() -> str:
        from bot.nlu.second_request import CUES_FILE, load_cues

        return f"{len(load_cues(CUES_FILE)[1])} intents"

    from bot.complaints.classifier import RULES_FILE
    from bot.complaints.second_opinion import CUES_FILE as SECOND_OPINION_FILE
    from bot.orders.catalogue import CATALOGUE_DIR
    from bot.preferences.vocabulary import VOCABULARY_FILE
    from bot.scope import NEAR_DOMAIN_FILE

    return [("knowledge base", Path(settings.knowledge_dir), kb),
            ("add-on catalogue", CATALOGUE_DIR, catalogue),
            ("SLA policy", Path(settings.sla_policy_file), policy),
            ("complaint rules", RULES_FILE, complaints),
            ("preference vocabulary", VOCABULARY_FILE, vocabulary),
            ("complaint second opinion cues", SECOND_OPINION_FILE, second_opinion),
            ("near-domain requests", NEAR_DOMAIN_FILE, near_domain),
            ("second-request cues", root / "data" / "scope" / "second_requests.yml", second_requests),
            ("NLU training data", root / "data" / "nlu", nlu)]


def check_all(settings: Settings, root: Path = PROJECT_ROOT) -> list[Check]:
    out = []
    for name, path, run in _checks(settings, root):
        try:
            out.append(Check(name, str(path), True, run()))
        except Exception as exc:  # each loader raises its own error type with the file and line
            out.append(Check(name, str(path), False, str(exc)))
    return out

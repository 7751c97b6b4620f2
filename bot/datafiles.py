"""The data files admins edit (knowledge base, add-on catalogue, SLA policy, complaint rules,
preference vocabulary, marketing policy and touchpoints, console staff and canned replies, WeCom
corp tags, demo guests, NLU training data): one validation for all of them, and the live
(reload-on-change) versions the running processes use.

`concierge data check` runs `check_all()`: every file is loaded by the same code that serves
guests, so "ok" means the running bot will accept it; a refusal prints `file: what is wrong`
(each loader raises a bot.core.errors.DataError naming its file). The processes hold `Live` values
(bot.live): an edit takes effect within seconds, without a restart; an edit that fails
validation is refused in the log and the running version stays.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from bot.core.errors import DataError
from bot.live import Live
from bot.settings import PROJECT_ROOT, Settings


@dataclass(frozen=True)
class Check:
    name: str
    path: str
    ok: bool
    detail: str  # what was loaded, or why it was refused
    file: str = ""  # the file at fault (a refusal): the one the loader named, else `path`

    @property
    def line(self) -> str:
        if self.ok:
            return f"ok   {self.name}: {self.path} ({self.detail})"
        return f"FAIL {self.name}: {self.file}: {' '.join(self.detail.split())}"  # one line


def _at_fault(path: str, message: str) -> tuple[str, str]:
    """(file, what is wrong): loaders start their messages with the file they refuse, which is
    `path` or a file in it; anything else is about `path` itself."""
    for prefix in ("cannot read ",):
        if message.startswith(prefix + path):
            return message[len(prefix) :].split(": ", 1)[0], message
    if message.startswith(path):
        file, _, what = message.partition(": ")
        if what:
            return file, what
    return path, message


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

    def marketing_policy() -> str:
        from bot.marketing.policy import load_policy as load_marketing_policy

        loaded = load_marketing_policy(settings.marketing_policy_file)
        return (
            f"quiet hours {loaded.quiet_from}-{loaded.quiet_to}, {len(loaded.coupons)} coupon sets"
        )

    def touchpoints() -> str:
        from bot.marketing.touchpoints import load_sequences

        loaded = load_sequences(settings.touchpoints_file)
        return f"{len(loaded.default)} default steps, {len(loaded.properties)} properties"

    def staff() -> str:
        from bot.console.staff import load_staff_file

        return f"{len(load_staff_file(settings.console_staff_file))} people"

    def canned() -> str:
        from bot.console.canned import load_canned_replies

        loaded = load_canned_replies(settings.console_canned_replies_file)
        return f"{sum(len(v) for v in loaded.values())} replies for {len(loaded)} properties"

    def corp_tags() -> str:
        from bot.wecom.tag_mirror import WeComTagMirror

        path = settings.wecom_corp_tags_file or root / "data" / "wecom_corp_tags.yml"
        loaded = WeComTagMirror.from_file(path)
        return f"{sum(len(v) for v in loaded.tag_ids.values())} tags"

    def demo() -> str:
        from bot.crm.demo import DEMO_FILE, read_demo_file

        return f"{len(read_demo_file(DEMO_FILE))} guests"

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
    from bot.crm.demo import DEMO_FILE
    from bot.orders.catalogue import CATALOGUE_DIR
    from bot.preferences.vocabulary import VOCABULARY_FILE
    from bot.scope import NEAR_DOMAIN_FILE

    return [
        ("knowledge base", Path(settings.knowledge_dir), kb),
        ("add-on catalogue", CATALOGUE_DIR, catalogue),
        ("SLA policy", Path(settings.sla_policy_file), policy),
        ("complaint rules", RULES_FILE, complaints),
        ("preference vocabulary", VOCABULARY_FILE, vocabulary),
        ("complaint second opinion cues", SECOND_OPINION_FILE, second_opinion),
        ("near-domain requests", NEAR_DOMAIN_FILE, near_domain),
        ("second-request cues", root / "data" / "scope" / "second_requests.yml", second_requests),
        ("marketing policy", Path(settings.marketing_policy_file), marketing_policy),
        ("touchpoints", Path(settings.touchpoints_file), touchpoints),
        ("console staff", Path(settings.console_staff_file), staff),
        ("canned replies", Path(settings.console_canned_replies_file), canned),
        (
            "WeCom corp tags",
            Path(settings.wecom_corp_tags_file or root / "data" / "wecom_corp_tags.yml"),
            corp_tags,
        ),
        ("demo guests", DEMO_FILE, demo),
        ("NLU training data", root / "data" / "nlu", nlu),
    ]


def _shown(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def check_all(
    settings: Settings, root: Path = PROJECT_ROOT, names: Optional[Iterable[str]] = None
) -> list[Check]:
    """Every data file's check (or only those `names`), in a stable order."""
    wanted = set(names) if names is not None else None
    out = []
    for name, path, run in _checks(settings, root):
        if wanted is not None and name not in wanted:
            continue
        try:
            out.append(Check(name, _shown(path, root), True, run()))
        except Exception as exc:  # loaders raise a DataError naming the file; anything else
            # (a loader's bug) is reported the same way rather than stopping the other checks
            message = str(exc).replace(str(root.resolve()) + "/", "")
            shown = _shown(path, root)
            file, what = _at_fault(shown, message)
            if not isinstance(exc, DataError):
                what = f"{type(exc).__name__}: {what}"
            out.append(Check(name, shown, False, what, file))
    return out

"""Record what a guest reveals about themselves as CRM preference tags, and confirm it back.

- Each tag is stored with the guest's own words (encrypted by the store), its confidence and
  time; saying it again refreshes the row (the store upserts on guest+category+value).
- A take-back ("不是蜜月") deactivates the tag; in a single-valued category (purpose, floor,
  bed...) a new value replaces the old one.
- Tags in mirrored categories go to WeCom corp tags through a `TagMirror` (no-op by default).
- The guest's own birthday ("我生日是5月20号") also fills `guests.birthday`, which touchpoints
  read; someone else's ("老公的生日…") stays a tag only. A year the guest did not say is not
  invented: it is stored as BIRTHDAY_YEAR_UNKNOWN (a leap year, so 2月29日 fits), or the year
  already on file is kept.
- The confirmation is one natural sentence built from the vocabulary's phrasing; it promises
  nothing the hotel has not agreed to ("会参考", not "一定安排").
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import Callable

from bot.crm.store import CRMStore
from bot.orders.when import china_now
from bot.preferences.extractor import PreferenceExtractor, TagMatch
from bot.preferences.mirror import CorpTag, NoTagMirror, TagMirror
from bot.replies import Reply

log = logging.getLogger(__name__)

OP_RECORD = "preferences.record"

# guests.birthday when only month and day were said (leap, so 02-29 is a valid date).
BIRTHDAY_YEAR_UNKNOWN = 1904
_SOMEONE_ELSE = re.compile(
    r"老公|老婆|太太|先生|丈夫|妻子|爱人|孩子|儿子|女儿|宝宝|妈|爸|父亲|母亲|朋友|同事"
)
_YEAR = re.compile(r"((?:19|20)\d{2})\s*年")

NOTHING_FOUND_TEXT = (
    "抱歉，我没能从这句话里听出具体的偏好。可以直接告诉我，比如“想要高楼层”"
    "“对海鲜过敏”“这次是蜜月旅行”，我会记到您的档案里。"
)


@dataclass(frozen=True)
class Outcome:
    added: tuple[TagMatch, ...]
    removed: tuple[tuple[str, str], ...]  # (category, value) no longer true
    replaced: tuple[tuple[str, str, str], ...]  # (category, old value, new value)
    amenities: tuple[str, ...] = ()  # KB amenities worth telling (pets -> pet_policy)


@dataclass
class PreferenceService:
    store: CRMStore
    extractor: PreferenceExtractor = field(default_factory=PreferenceExtractor)
    mirror: TagMirror = field(default_factory=NoTagMirror)
    now: Callable[[], dt.datetime] = china_now

    @property
    def vocab(self):
        return self.extractor.vocab

    # ---- entry points -------------------------------------------------------------------
    def record(self, sender_id: str, text: str, *, at: dt.datetime | None = None) -> Reply:
        """Extract, store, mirror and confirm. Raises StoreUnavailable (nothing half-written
        matters: replaying the same text again gives the same tags)."""
        outcome = self.apply(sender_id, text, at=at)
        return Reply.of(
            *self.confirmation(outcome),
            slots={"preference_amenity": outcome.amenities[0] if outcome.amenities else None},
        )

    def apply(self, sender_id: str, text: str, *, at: dt.datetime | None = None) -> Outcome:
        matches = self.extractor.extract(text, now=at or self.now())
        if not matches:
            return Outcome((), (), ())
        guest = self.store.get_or_create_guest(sender_id)
        active = {(t.category, t.value) for t in self.store.tags(sender_id)}
        added: list[TagMatch] = []
        removed: list[tuple[str, str]] = []
        replaced: list[tuple[str, str, str]] = []
        for match in matches:
            key = (match.category, match.value)
            if match.retract:
                if key in active:
                    self.store.deactivate_tag(sender_id, *key)
                    active.discard(key)
                    removed.append(key)
                continue
            category = self.vocab.categories[match.category]
            if not category.multi:
                for other in [k for k in active if k[0] == match.category and k != key]:
                    self.store.deactivate_tag(sender_id, *other)
                    active.discard(other)
                    replaced.append((match.category, other[1], match.value))
            self.store.upsert_tag(
                sender_id,
                match.category,
                match.value,
                source_message=text,
                confidence=match.confidence,
            )
            active.add(key)
            added.append(match)
        # a take-back followed by its replacement ("不是蜜月，是纪念日") reads as one correction
        for cat, old in list(removed):
            new = next((m.value for m in added if m.category == cat), None)
            if new is not None and not self.vocab.categories[cat].multi:
                removed.remove((cat, old))
                replaced.append((cat, old, new))
        self._mirror(guest, added, removed + [(c, old) for c, old, _ in replaced])
        self._birthday(sender_id, guest, [m for m in added if m.category == "birthday"], text)
        amenities = tuple(
            dict.fromkeys(
                self.vocab.categories[m.category].amenity
                for m in added
                if self.vocab.categories[m.category].amenity
            )
        )
        return Outcome(tuple(added), tuple(removed), tuple(replaced), amenities)

    def apply_spooled(self, entry: dict) -> None:
        payload = entry["payload"]
        at = dt.datetime.fromisoformat(payload["at"]) if payload.get("at") else None
        self.apply(entry["sender_id"], payload["text"], at=at)

    # ---- wording --------------------------------------------------------------------------
    def confirmation(self, outcome: Outcome) -> tuple[str, ...]:
        if not (outcome.added or outcome.removed or outcome.replaced):
            return (NOTHING_FOUND_TEXT,)
        replaced_new = {(c, new) for c, _, new in outcome.replaced}
        parts = []
        for cat, old, new in outcome.replaced:
            parts.append(f"已更正为{self.vocab.say(cat, new)}（不再记“{old}”）")
        for match in outcome.added:
            if (match.category, match.value) in replaced_new:
                continue
            parts.append(self.vocab.say(match.category, match.value))
        for cat, value in outcome.removed:
            parts.append(f"已取消“{value}”这条偏好")
        sentence = "好的，记下了：" + "，".join(parts) + "。"
        tail = "已保存到您的客户档案，之后为您安排时会参考。"
        if any(m.category in ("allergy", "diet") for m in outcome.added):
            tail = "已保存到您的客户档案（健康相关信息加密保存），之后为您安排餐饮和服务时会参考。"
        if any(m.confidence < 0.8 for m in outcome.added):
            tail += "如果我理解得不对，直接告诉我就好。"
        return (sentence + tail,)

    def _birthday(self, sender_id: str, guest, matches: list[TagMatch], text: str) -> None:
        """The guest's own stated birthday into the profile (touchpoints use guests.birthday)."""
        own = [m for m in matches if not _SOMEONE_ELSE.search(m.phrase)]
        if not own:
            return
        month, day = (int(x) for x in own[-1].value.split("-"))
        year_said = _YEAR.search(own[-1].phrase) or _YEAR.search(text)
        current = getattr(guest, "birthday", None)
        if year_said:
            year = int(year_said.group(1))
        elif current is not None:
            year = current.year
        else:
            year = BIRTHDAY_YEAR_UNKNOWN
        try:
            birthday = dt.date(year, month, day)
        except ValueError:  # 2月29日 with a year on file that is not a leap year
            birthday = dt.date(BIRTHDAY_YEAR_UNKNOWN, month, day)
        if birthday != current:
            self.store.update_guest(sender_id, birthday=birthday)

    # ---- WeCom corp tags ------------------------------------------------------------------
    def _mirror(self, guest, added, removed) -> None:
        external = getattr(guest, "wecom_external_userid", None) or getattr(
            guest, "kf_external_userid", None
        )
        if not external:
            return
        cats = self.vocab.categories
        add = [CorpTag(cats[m.category].label, m.value) for m in added if cats[m.category].mirror]
        remove = [CorpTag(cats[c].label, v) for c, v in removed if c in cats and cats[c].mirror]
        if not add and not remove:
            return
        try:
            self.mirror.sync(external, add, remove)
        except Exception:  # WeCom down or misconfigured: the CRM already has the truth
            log.exception("mirroring tags to WeCom failed for %s", guest.sender_id)

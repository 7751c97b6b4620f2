"""How inbox texts are shown and compared: normalised like the NLU sees them, with personal
numbers masked, and a comparison key under which near-identical texts fall together."""

from __future__ import annotations

import difflib
import hashlib
import hmac
import re
import unicodedata

from bot.nlu.normalizer import normalize

# Personal numbers a guest may type into a message: mainland mobile numbers, resident ID
# numbers, e-mail addresses. Admins label the wording, not the number.
_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_ID = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)

NEAR_DUPLICATE = 0.85  # SequenceMatcher ratio of two comparison keys in one group


def mask_personal(text: str) -> str:
    text = _ID.sub(lambda m: f"{m.group(1)}********{m.group(2)[-1]}", text)
    text = _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _EMAIL.sub("***@***", text)


def display_text(raw: str | None) -> str:
    """The guest's text as the NLU saw it (simplified, half-width, lower case), numbers masked."""
    return mask_personal(normalize(unicodedata.normalize("NFKC", (raw or "").strip())))


def comparison_key(text: str) -> str:
    """Normalised, without punctuation, emoji or spaces: "房间 wifi 连不上!!" == "房间wifi连不上"."""
    return _PUNCT.sub("", normalize(unicodedata.normalize("NFKC", text or "")))


def group_key(text: str) -> str:
    return hashlib.sha256(comparison_key(text).encode("utf-8")).hexdigest()


def similarity(a: str, b: str) -> float:
    ka, kb = comparison_key(a), comparison_key(b)
    if not ka or not kb:
        return 0.0
    return difflib.SequenceMatcher(None, ka, kb, autojunk=False).ratio()


def sender_hash(sender_id: str, key: str) -> str:
    """A keyed hash: the inbox never stores who wrote a message, erasure can still find it."""
    return hmac.new(key.encode("utf-8"), sender_id.encode("utf-8"), hashlib.sha256).hexdigest()


# Characters that carry no topic: two messages sharing only these are not about the same thing.
_FUNCTION_CHARS = set("我你您他她它的了吗呢啊吧呀嘛哦是在有个一这那么就也都还要想请问下")


def overlap(a: str, b: str) -> float:
    """Dice coefficient of the content characters of two texts, order ignored: a rephrase moves
    words around ("能不能弄个婴儿床到房间" / "能在房间加张婴儿床吗" → 0.74)."""
    ca = set(comparison_key(a)) - _FUNCTION_CHARS
    cb = set(comparison_key(b)) - _FUNCTION_CHARS
    if not ca or not cb:
        return 0.0
    return 2 * len(ca & cb) / (len(ca) + len(cb))

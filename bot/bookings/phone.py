"""Mainland China mobile numbers as hotels' exports write them, reduced to one form.

"+86 138-0013-8000", "0086 13800138000", "86-13800138000", "138 0013 8000" and full-width digits
all become "13800138000". Anything that is not an 11-digit mobile starting with 1[3-9] is
refused (`None`): a guest is matched and verified by this number, so a guess would be worse than
a rejected row.
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\s\-()（）.·]")
_MOBILE = re.compile(r"1[3-9]\d{9}")


def normalize_phone(raw: object) -> str | None:
    """The 11-digit mobile number, or None when `raw` is not one."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", str(raw)).strip()
    if text.endswith(".0"):  # a phone column Excel turned into a float
        text = text[:-2]
    text = _SEPARATORS.sub("", text)
    if text.startswith("+"):
        text = text[1:]
    if text.startswith("0086"):
        text = text[4:]
    elif text.startswith("86") and len(text) == 13:
        text = text[2:]
    return text if _MOBILE.fullmatch(text) else None


def phone_index(phone: str | None) -> str | None:
    """The blind index the `guests.phone_index` column holds for `phone` (None if not a mobile)."""
    from bot.crm.crypto import blind_index

    normal = normalize_phone(phone)
    return blind_index(f"phone:{normal}") if normal else None

"""Signed case links: who may open which case page, until when.

A link's `sig` is `<expiry>.<viewer>.<mac>`: the expiry in Unix seconds, the viewer (the advisor's
WeCom userid, or `group:<name>` for an emergency-group post) in url-safe base64, and an HMAC-SHA256
over case id, viewer and expiry with PAGING_LINK_SECRET, a secret used for nothing else. So a link
opens one case, for the person it was sent to, for CASE_LINK_TTL_S; the page audits that viewer.

Whatever arrives in `sig` is untrusted: any malformed value (non-ASCII, wrong shape, bad base64)
is a `LinkInvalid`, never an exception the server turns into a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Callable, Optional

from bot.core.settings import DEV_PAGING_LINK_SECRET, Settings, get_settings

# Settings supply it outside production when PAGING_LINK_SECRET is unset (named here for tests).
DEV_SECRET = DEV_PAGING_LINK_SECRET
MAC_CHARS = 32
MAX_SIG_CHARS = 512


class LinkInvalid(ValueError):
    """The link is forged, expired, malformed or for another case. `reason` is for the log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CaseAccess:
    case_id: int
    viewer: str
    expires_at: int


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")


class CaseLinks:
    def __init__(self, secret: str, ttl_s: int, *, clock: Callable[[], float] = time.time):
        if not secret:
            raise ValueError("a case-link secret is required")
        self._key = secret.encode("utf-8")
        self.ttl_s = int(ttl_s)
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Optional[Settings] = None, **kwargs) -> "CaseLinks":
        """PAGING_LINK_SECRET (outside production, settings fill in the public development one).
        A process that would start without it is stopped earlier, by bot.preflight; this
        refusal is the second line."""
        settings = settings or get_settings()
        secret = settings.paging_link_secret
        if not secret:
            raise ValueError("PAGING_LINK_SECRET is not set (run `concierge preflight`)")
        return cls(secret, settings.case_link_ttl_s, **kwargs)

    def _mac(self, case_id: int, viewer: str, expires_at: int) -> str:
        message = f"case:{int(case_id)}|viewer:{viewer}|exp:{int(expires_at)}".encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:MAC_CHARS]

    def sign(self, case_id: int, viewer: str, *, now: Optional[float] = None) -> str:
        if not viewer:
            raise ValueError("a case link is signed for a viewer")
        expires_at = int((self.clock() if now is None else now) + self.ttl_s)
        return f"{expires_at}.{_b64(viewer)}.{self._mac(case_id, viewer, expires_at)}"

    def verify(self, case_id: int, sig: str, *, now: Optional[float] = None) -> CaseAccess:
        """The viewer the link was sent to, or LinkInvalid."""
        if not sig or len(sig) > MAX_SIG_CHARS or not sig.isascii():
            raise LinkInvalid("missing, oversized or non-ASCII signature")
        parts = sig.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            raise LinkInvalid("not <expiry>.<viewer>.<mac>")
        expires_at = int(parts[0])
        try:
            viewer = _unb64(parts[1])
        except (binascii.Error, ValueError):
            raise LinkInvalid("viewer is not url-safe base64") from None
        if not viewer:
            raise LinkInvalid("no viewer")
        if not hmac.compare_digest(parts[2], self._mac(case_id, viewer, expires_at)):
            raise LinkInvalid("signature does not match (forged, altered or another case)")
        if (self.clock() if now is None else now) >= expires_at:
            raise LinkInvalid("expired")
        return CaseAccess(int(case_id), viewer, expires_at)

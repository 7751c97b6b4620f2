"""Sign-in for the staff console: sessions, one-time login links, CSRF tokens.

Everything is signed with CONSOLE_SECRET (HMAC-SHA256), so the console keeps no session table and
several console processes can serve the same staff:
- a **session** is a cookie `userid|issued|expires|nonce|sig`; it is refused once `expires` has
  passed (CONSOLE_SESSION_TTL_S) or when the member is no longer in the staff directory (roles
  are looked up on every request, never trusted from the cookie);
- a **login link** (`concierge staff login-link USERID`) carries `userid|expires|nonce|sig`, works
  for CONSOLE_LOGIN_LINK_TTL_S and only once: the first use is written to the audit log
  (`console.sign_in`, subject `login_link` / nonce) and a link whose nonce is there is refused,
  which survives console restarts; a per-process set closes the window between two concurrent
  uses;
- the **CSRF token** of a session is HMAC(secret, "csrf" + session nonce): every POST must carry
  it (form field `csrf` or header `X-CSRF-Token`), so another site cannot post as the member.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Optional

from bot.preflight import Secret, _is_loopback_url
from bot.settings import Settings

log = logging.getLogger(__name__)

# The development secret (published here): the preflight refuses it outside development/test.
DEV_SECRET = "dev-only-console-secret"
SESSION_COOKIE = "concierge_console"
STATE_COOKIE = "concierge_oauth_state"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Signer:
    def __init__(self, secret: str):
        if not secret:
            raise ValueError("the console needs a signing secret")
        self._key = secret.encode()

    def sign(self, purpose: str, payload: str) -> str:
        mac = hmac.new(self._key, f"{purpose}\x1f{payload}".encode(), hashlib.sha256).digest()
        return _b64(mac[:24])

    def check(self, purpose: str, payload: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(purpose, payload), signature or "")


@dataclass(frozen=True)
class Session:
    userid: str
    issued: int
    expires: int
    nonce: str

    def remaining_s(self, now: float) -> int:
        return max(0, int(self.expires - now))


class BadToken(ValueError):
    """A session, link or state that is forged, malformed, expired or used (`reason` says which)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _fields(token: str, count: int) -> list[str]:
    parts = (token or "").split("|")
    if len(parts) != count or not all(parts):
        raise BadToken("malformed")
    return parts


class Auth:
    """Sessions, login links and CSRF over one Signer; `clock` returns epoch seconds."""

    def __init__(
        self,
        secret: str,
        *,
        session_ttl_s: int = 8 * 3600,
        link_ttl_s: int = 600,
        clock: Callable[[], float] = time.time,
    ):
        self.signer = Signer(secret)
        self.session_ttl_s = session_ttl_s
        self.link_ttl_s = link_ttl_s
        self.clock = clock
        self._used_links: dict[str, float] = {}  # nonce -> expiry, this process

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs) -> "Auth":
        secret = settings.console_secret
        if not secret:
            log.warning(
                "CONSOLE_SECRET is not set: using the development secret (production "
                "refuses to start without one)"
            )
            secret = DEV_SECRET
        return cls(
            secret,
            session_ttl_s=settings.console_session_ttl_s,
            link_ttl_s=settings.console_login_link_ttl_s,
            **kwargs,
        )

    # ---- sessions -------------------------------------------------------------------------
    def new_session(self, userid: str) -> tuple[Session, str]:
        if not userid or "|" in userid:
            raise ValueError(f"bad userid {userid!r}")
        now = int(self.clock())
        session = Session(userid, now, now + self.session_ttl_s, secrets.token_urlsafe(12))
        payload = f"{session.userid}|{session.issued}|{session.expires}|{session.nonce}"
        return session, f"{payload}|{self.signer.sign('session', payload)}"

    def read_session(self, cookie: Optional[str]) -> Session:
        if not cookie:
            raise BadToken("missing")
        userid, issued, expires, nonce, sig = _fields(cookie, 5)
        payload = f"{userid}|{issued}|{expires}|{nonce}"
        if not self.signer.check("session", payload, sig):
            raise BadToken("forged")
        try:
            session = Session(userid, int(issued), int(expires), nonce)
        except ValueError:
            raise BadToken("malformed") from None
        if self.clock() >= session.expires:
            raise BadToken("expired")
        return session

    def csrf_token(self, session: Session) -> str:
        return self.signer.sign("csrf", f"{session.userid}|{session.nonce}")

    def check_csrf(self, session: Session, token: Optional[str]) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token)

    # ---- one-time login links --------------------------------------------------------------
    def login_token(self, userid: str) -> str:
        if not userid or "|" in userid:
            raise ValueError(f"bad userid {userid!r}")
        expires = int(self.clock()) + self.link_ttl_s
        payload = f"{userid}|{expires}|{secrets.token_urlsafe(12)}"
        return f"{payload}|{self.signer.sign('login', payload)}"

    def open_login_token(
        self, token: str, *, used_before: Callable[[str], bool]
    ) -> tuple[str, str]:
        """(userid, nonce) of a valid, unexpired, unused link; marks it used in this process.
        `used_before(nonce)` asks the durable record (the audit log). Raises BadToken."""
        userid, expires, nonce, sig = _fields(token, 4)
        if not self.signer.check("login", f"{userid}|{expires}|{nonce}", sig):
            raise BadToken("forged")
        now = self.clock()
        if not expires.isdigit():
            raise BadToken("malformed")
        if now >= int(expires):
            raise BadToken("expired")
        self._used_links = {n: e for n, e in self._used_links.items() if e > now}
        if nonce in self._used_links or used_before(nonce):
            raise BadToken("used")
        self._used_links[nonce] = float(expires)
        return userid, nonce

    # ---- OAuth state -----------------------------------------------------------------------
    def oauth_state(self) -> tuple[str, str]:
        """(state for the authorize URL, the cookie that must come back with it)."""
        state = secrets.token_urlsafe(16)
        expires = int(self.clock()) + 600
        payload = f"{state}|{expires}"
        return state, f"{payload}|{self.signer.sign('oauth', payload)}"

    def check_oauth_state(self, state: Optional[str], cookie: Optional[str]) -> None:
        if not state or not cookie:
            raise BadToken("missing")
        value, expires, sig = _fields(cookie, 3)
        if not self.signer.check("oauth", f"{value}|{expires}", sig) or not hmac.compare_digest(
            value, state
        ):
            raise BadToken("forged")
        if not expires.isdigit() or self.clock() >= int(expires):
            raise BadToken("expired")


# ---- preflight (bot.preflight) ---------------------------------------------------------------

PREFLIGHT_SECRETS = [
    Secret(
        "CONSOLE_SECRET",
        "the staff console's session and login-link secret",
        lambda s: s.console_secret,
        known=frozenset({DEV_SECRET}),
    )
]


def preflight_checks(settings: Settings):
    from urllib.parse import urlparse

    if not settings.console_base_url:
        yield (
            "CONSOLE_BASE_URL: unset: login links would point at localhost; set the "
            "console's public https URL"
        )
    elif urlparse(settings.console_base_url).scheme != "https" or _is_loopback_url(
        settings.console_base_url
    ):
        yield f"CONSOLE_BASE_URL: {settings.console_base_url} must be a public https URL"
    if _is_loopback_url(settings.wecom_oauth_base):
        yield (
            f"WECOM_OAUTH_BASE: {settings.wecom_oauth_base} is this machine: the sandbox's "
            "login page would let anyone sign in as anyone"
        )

"""Exceptions of the WeCom layer, so callers can tell "retry later" from "give up"."""

from __future__ import annotations

from typing import Optional

# errcodes the client treats specially (https://developer.work.weixin.qq.com/document/path/90313)
SYSTEM_BUSY = -1
INVALID_SECRET = 40001
INVALID_TOKEN = 40014
EXPIRED_TOKEN = 42001
TOKEN_ERRCODES = frozenset({INVALID_SECRET, INVALID_TOKEN, EXPIRED_TOKEN})
RATE_LIMITED = 45009
CONTENT_TOO_LONG = 45002
INVALID_PARAMETER = 40058  # also what kf/send_msg answers to a msgid it already has
KF_INVALID_OPEN_KFID = 95000
KF_QUOTA_EXHAUSTED = 95001
KF_SESSION_STATE_INVALID = 95018


class WeComError(Exception):
    """Base class."""


class CallbackError(WeComError):
    """An inbound callback we refuse; `status` is the HTTP status to answer with."""

    status = 400


class SignatureError(CallbackError):
    """msg_signature does not match, or the timestamp is outside the allowed window (forged/stale)."""

    status = 403


class DecryptError(CallbackError):
    """Signed correctly but the ciphertext or receive id is wrong."""

    status = 400


class MalformedCallback(CallbackError):
    """The body is not the XML/JSON WeCom sends."""

    status = 400


class WeComAPIError(WeComError):
    """WeCom answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str = "", path: str = "") -> None:
        super().__init__(f"{path}: errcode {errcode} {errmsg}".strip())
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path

    @property
    def retryable(self) -> bool:
        return self.errcode in (SYSTEM_BUSY, RATE_LIMITED)


class RateLimited(WeComError):
    """Our own limiter (or WeCom's 45009) says: not now. `retry_after` in seconds."""

    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"rate limited on {key}; retry after {retry_after:.1f}s")
        self.key = key
        self.retry_after = retry_after


class TransportError(WeComError):
    """Timeout, connection refused, non-JSON or 5xx answer: worth a retry."""

    def __init__(self, message: str, path: str = "", cause: Optional[BaseException] = None):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.cause = cause

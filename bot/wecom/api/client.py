"""Async client for the WeCom server API (aiohttp: no blocking I/O on Sanic's event loop).

Every call has a timeout. The access token comes from `AccessTokenProvider` (Redis-shared when
REDIS_URL is set) and is refreshed once when WeCom answers 40001/40014/42001. Transport errors,
-1 (busy) and 45009 (rate limit) are retried with exponential back-off (longer for 45009).
`send()` is the logged path for messages: it records the send in the outbox, refuses a repeated
dedupe key, applies our own per-recipient rate limit, and leaves a failed send in the outbox for
the retry loop (or `dead`), so nothing is lost quietly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

import aiohttp

from bot.wecom.errors import (
    RATE_LIMITED,
    TOKEN_ERRCODES,
    TransportError,
    WeComAPIError,
)
from bot.ops.metrics import MESSAGES_OUT, TOKEN_REFRESHES, WECOM_ERRCODES
from bot.wecom.api.token import AccessTokenProvider
from bot.wecom.protocol import SendStatus

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
RETRY_LATER_S = 30.0
RATE_LIMIT_RETRY_LATER_S = 60.0


@dataclass(frozen=True)
class SendResult:
    status: str  # a bot.wecom.protocol.SendStatus value
    response: Optional[Dict[str, Any]] = None
    errcode: Optional[int] = None
    outbox_id: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.status == SendStatus.SENT.value


class WeComClient:
    """One WeCom app (a corp id + secret), or a token-less client for webhooks / response_url."""

    def __init__(
        self,
        app: str,
        corp_id: str,
        secret: Optional[str],
        api_base: str,
        *,
        token_store=None,
        outbox=None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = 3,
        backoff_s: float = 0.5,
        rate_limit_backoff_s: float = 2.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.app = app
        self.corp_id = corp_id
        self.api_base = api_base.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = max(1, retries)
        self.backoff_s = backoff_s
        self.rate_limit_backoff_s = rate_limit_backoff_s
        self.outbox = outbox
        self.sleep = sleep
        self._secret = secret
        self.tokens = (
            AccessTokenProvider(corp_id, secret, self._fetch_token, store=token_store)
            if secret
            else None
        )
        self._sessions: Dict[int, tuple] = {}  # id(loop) -> (weakref to the loop, session)

    # ---- HTTP ---------------------------------------------------------------------------
    def http(self) -> aiohttp.ClientSession:
        """One session per event loop (a session is bound to the loop that made it)."""
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(id(loop))
        if entry is None or entry[0]() is not loop or entry[1].closed:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            self._sessions[id(loop)] = (weakref.ref(loop), session)
            return session
        return entry[1]

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for key, (loop_ref, session) in list(self._sessions.items()):
            if loop_ref() is loop and not session.closed:
                await session.close()
            self._sessions.pop(key, None)

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.api_base}{path_or_url if path_or_url.startswith('/') else '/' + path_or_url}"

    async def _raw(
        self,
        method: str,
        url: str,
        params: Optional[Mapping[str, Any]] = None,
        body: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        path = url.split("?", 1)[0]
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else None
        try:
            async with self.http().request(
                method, url, params=params, data=data, headers=headers
            ) as resp:
                text = await resp.text(encoding="utf-8", errors="replace")
                if resp.status >= 500:
                    raise TransportError(f"HTTP {resp.status}", path)
                if resp.status >= 400:
                    raise WeComAPIError(-resp.status, f"HTTP {resp.status}", path)
        except asyncio.TimeoutError as exc:
            raise TransportError(f"timeout after {self.timeout_s}s", path, exc) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}", path, exc) from None
        try:
            result = json.loads(text)
        except ValueError:
            raise TransportError("answer is not JSON", path) from None
        if not isinstance(result, dict):
            raise TransportError("answer is not a JSON object", path)
        return result

    async def _fetch_token(self):
        data = await self._raw(
            "GET",
            self.url("/cgi-bin/gettoken"),
            params={"corpid": self.corp_id, "corpsecret": self._secret},
        )
        errcode = int(data.get("errcode") or 0)
        if errcode or not data.get("access_token"):
            WECOM_ERRCODES.labels("/cgi-bin/gettoken", str(errcode or -2)).inc()
            raise WeComAPIError(
                errcode or -2, data.get("errmsg", "no access_token"), "/cgi-bin/gettoken"
            )
        TOKEN_REFRESHES.labels(self.app).inc()
        return data["access_token"], int(data.get("expires_in") or 7200)

    # ---- calls ----------------------------------------------------------------------------
    async def request(
        self,
        path: str,
        body: Optional[Mapping[str, Any]] = None,
        *,
        method: str = "POST",
        params: Optional[Mapping[str, Any]] = None,
        auth: bool = True,
    ) -> Dict[str, Any]:
        """One call; on a token errcode the token is dropped, fetched again and the call made once more."""
        url = self.url(path)
        for attempt in (0, 1):
            query = dict(params or {})
            token = None
            if auth:
                if self.tokens is None:
                    raise WeComAPIError(-3, f"no secret configured for the {self.app} app", path)
                token = await self.tokens.get()
                query["access_token"] = token
            data = await self._raw(method, url, query or None, body)
            errcode = int(data.get("errcode") or 0)
            if errcode == 0:
                return data
            WECOM_ERRCODES.labels(path.split("?", 1)[0], str(errcode)).inc()
            if (
                auth
                and token
                and self.tokens is not None
                and errcode in TOKEN_ERRCODES
                and attempt == 0
            ):
                logger.info(
                    "WeCom %s answered %s: refreshing the %s token once", path, errcode, self.app
                )
                await self.tokens.invalidate(token)
                continue
            raise WeComAPIError(errcode, str(data.get("errmsg", "")), path.split("?", 1)[0])
        raise AssertionError("unreachable")

    async def call(
        self,
        path: str,
        body: Optional[Mapping[str, Any]] = None,
        *,
        retries: Optional[int] = None,
        **kwargs: Any,
    ) -> Dict[str, Any]:
        """`request()` with retries and back-off for transport errors, -1 and 45009."""
        attempts = self.retries if retries is None else max(1, retries)
        for i in range(attempts):
            try:
                return await self.request(path, body, **kwargs)
            except (TransportError, WeComAPIError) as exc:
                retryable = isinstance(exc, TransportError) or exc.retryable
                if not retryable or i == attempts - 1:
                    raise
                limited = isinstance(exc, WeComAPIError) and exc.errcode == RATE_LIMITED
                wait = (self.rate_limit_backoff_s if limited else self.backoff_s) * (2**i)
                logger.warning(
                    "WeCom %s failed (%s); retry %d/%d in %.1fs",
                    path,
                    exc,
                    i + 1,
                    attempts - 1,
                    wait,
                )
                await self.sleep(wait)
        raise AssertionError("unreachable")

    async def send(
        self,
        path: str,
        body: Dict[str, Any],
        *,
        recipient: Optional[str] = None,
        dedupe_key: Optional[str] = None,
        limiter=None,
        limiter_keys: tuple = (),
        max_wait_s: float = 5.0,
        errcode_status: Optional[Mapping[int, str]] = None,
        **kwargs: Any,
    ) -> SendResult:
        """A logged send: outbox record, dedupe, rate limit, retries, dead letter."""
        outbox_id = None
        if self.outbox is not None:
            outbox_id = await self.outbox.begin(self.app, path, body, recipient, dedupe_key)
            if outbox_id is None:
                logger.info(
                    "WeCom send %s to %s skipped: %s was already sent", path, recipient, dedupe_key
                )
                return SendResult("duplicate")
        return await self.attempt(
            outbox_id,
            path,
            body,
            limiter=limiter,
            limiter_keys=limiter_keys,
            max_wait_s=max_wait_s,
            errcode_status=errcode_status,
            **kwargs,
        )

    async def attempt(
        self,
        outbox_id: Optional[int],
        path: str,
        body: Dict[str, Any],
        *,
        limiter=None,
        limiter_keys: tuple = (),
        max_wait_s: float = 5.0,
        errcode_status: Optional[Mapping[int, str]] = None,
        **kwargs: Any,
    ) -> SendResult:
        """Try (again) an outbox row; also used by the retry loop."""

        async def mark(status: str, **kw) -> str:
            if self.outbox is None or outbox_id is None:
                return status
            return await self.outbox.mark(outbox_id, status, **kw)

        try:
            if limiter is not None:
                waited = 0.0
                for key in limiter_keys:
                    while True:
                        wait = await limiter.hit(key)
                        if wait <= 0:
                            break
                        if waited + wait > max_wait_s:
                            status = await mark(
                                "retry",
                                errmsg=f"local rate limit on {key}",
                                retry_in_s=wait,
                                attempted=False,
                            )
                            logger.warning(
                                "WeCom send to %s deferred %.0fs by the rate limit", key, wait
                            )
                            MESSAGES_OUT.labels(self.app, "deferred").inc()
                            return SendResult(
                                "deferred" if status == "retry" else status, outbox_id=outbox_id
                            )
                        await self.sleep(wait)
                        waited += wait
            data = await self.call(path, body, **kwargs)
        except WeComAPIError as exc:
            special = (errcode_status or {}).get(exc.errcode)
            if special:
                status = await mark(special, errcode=exc.errcode, errmsg=exc.errmsg)
            elif exc.retryable:
                later = RATE_LIMIT_RETRY_LATER_S if exc.errcode == RATE_LIMITED else RETRY_LATER_S
                status = await mark(
                    "retry", errcode=exc.errcode, errmsg=exc.errmsg, retry_in_s=later
                )
            else:
                status = await mark("dead", errcode=exc.errcode, errmsg=exc.errmsg)
            logger.warning("WeCom send %s failed: %s -> %s", path, exc, status)
            MESSAGES_OUT.labels(self.app, status).inc()
            return SendResult(status, errcode=exc.errcode, outbox_id=outbox_id)
        except TransportError as exc:
            status = await mark("retry", errmsg=str(exc), retry_in_s=RETRY_LATER_S)
            logger.warning("WeCom send %s failed: %s -> %s", path, exc, status)
            MESSAGES_OUT.labels(self.app, status).inc()
            return SendResult(status, outbox_id=outbox_id)
        except Exception as exc:
            if self.outbox is None or outbox_id is None:
                raise
            # Our own stores failed before WeCom was called (Redis behind the rate limit or the
            # token, e.g. restarting). Left 'sending', the row would go out 120 s later while the
            # caller, told it failed, sends again (an SLA step pages the next advisor): the
            # outbox keeps it for the retry loop instead, and the caller is told so.
            status = await mark(
                "retry",
                errmsg=f"{type(exc).__name__}: {exc}",
                retry_in_s=RETRY_LATER_S,
                attempted=False,
            )
            logger.warning("WeCom send %s not attempted: %r -> %s", path, exc, status)
            MESSAGES_OUT.labels(self.app, status).inc()
            return SendResult(status, outbox_id=outbox_id)
        await mark("sent")
        MESSAGES_OUT.labels(self.app, "sent").inc()
        logger.info("WeCom send %s (outbox row %s): sent", path.split("?", 1)[0], outbox_id)
        return SendResult("sent", data, outbox_id=outbox_id)

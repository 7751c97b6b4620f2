"""A small async client for the sandbox's control API, for end-to-end tests and benchmarks:
play a guest or an advisor, then wait for what the bot answered."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, List, Optional

import aiohttp

from bot.wecom import dev_defaults


class SandboxClient:
    def __init__(
        self,
        base: str = dev_defaults.SANDBOX_API_BASE,
        session: Optional[aiohttp.ClientSession] = None,
    ):
        self.base = base.rstrip("/")
        self._session = session
        self._own = session is None

    async def __aenter__(self) -> "SandboxClient":
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._own and self._session is not None:
            await self._session.close()

    async def _post(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        async with self._session.post(self.base + path, json=body) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def _get(self, path: str, **params: Any) -> Dict[str, Any]:
        async with self._session.get(self.base + path, params=params) as resp:
            resp.raise_for_status()
            return await resp.json()

    # ---- acting -----------------------------------------------------------------------------
    async def guest_kf(self, external_userid: str, text: str = "", **extra: Any) -> Dict[str, Any]:
        return await self._post(
            "/_sandbox/guest/kf", {"external_userid": external_userid, "text": text, **extra}
        )

    async def guest_kf_enter(self, external_userid: str) -> Dict[str, Any]:
        return await self._post("/_sandbox/guest/kf/enter", {"external_userid": external_userid})

    async def guest_group(self, chatid: str, userid: str, text: str) -> Dict[str, Any]:
        return await self._post(
            "/_sandbox/guest/group", {"chatid": chatid, "userid": userid, "text": text}
        )

    async def advisor_app(self, userid: str, text: str) -> Dict[str, Any]:
        return await self._post("/_sandbox/advisor/app", {"userid": userid, "text": text})

    async def fault(self, path: str, **spec: Any) -> Dict[str, Any]:
        return await self._post("/_sandbox/faults", {"path": path, **spec})

    async def reset(self) -> None:
        await self._post("/_sandbox/reset", {})

    # ---- observing --------------------------------------------------------------------------
    async def calls(self, path: Optional[str] = None, since: int = 0) -> List[Dict[str, Any]]:
        params: Dict[str, Any] = {"since": since}
        if path:
            params["path"] = path
        return (await self._get("/_sandbox/calls", **params))["calls"]

    async def feed(self, since: int = 0) -> List[Dict[str, Any]]:
        return (await self._get("/_sandbox/feed", since=since))["feed"]

    async def last_seq(self) -> int:
        feed = await self.feed()
        return feed[-1]["seq"] if feed else 0

    async def wait_for_bot(
        self,
        channel: str,
        key: str,
        *,
        since: int = 0,
        count: int = 1,
        timeout: float = 30.0,
        poll_s: float = 0.2,
    ) -> List[Dict[str, Any]]:
        """The bot's messages to `key` on `channel` (kf | group | single | app) after `since`;
        waits until `count` arrived or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            got = [
                f
                for f in await self.feed(since)
                if f["channel"] == channel and f["key"] == key and f["from"] == "bot"
            ]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise asyncio.TimeoutError(
                    f"{len(got)}/{count} bot messages to {channel}:{key} after {timeout}s"
                )
            await asyncio.sleep(poll_s)

    async def ask_kf(self, external_userid: str, text: str, timeout: float = 30.0) -> str:
        """Send as a 微信客服 guest and return the bot's (first) answer text."""
        since = await self.last_seq()
        await self.guest_kf(external_userid, text)
        got = await self.wait_for_bot("kf", external_userid, since=since, timeout=timeout)
        return got[0]["text"]

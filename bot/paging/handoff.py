"""Handoff both ways: pause and resume the bot for a guest, and move the 微信客服 session.

- Rasa: `POST {RASA_URL}/conversations/{sender}/tracker/events` with `{"event": "pause"}`
  (ConversationPaused: Rasa still records what the guest writes, but predicts no reply) or
  `{"event": "resume"}` (ConversationResumed: the bot answers again, with everything that happened
  in its tracker). Token auth with RASA_AUTH_TOKEN (`?token=`), base URL RASA_URL
  (default http://localhost:5005). Guest notices are appended the same way as `bot` events with
  `execute_side_effects=true&output_channel=wecom`, so Rasa sends them through the WeCom channel
  *and* keeps them in the conversation.
- 微信客服: `kf/service_state/trans` to 3 with `servicer_userid` when an advisor takes over (the
  advisor then answers in WeCom's own 微信客服 tool), to 2 (the queue) when a guest waits for a
  person and nobody is on duty, back to 1 (the bot) on hand-back.
- Groups / 智能机器人 chats: the takeover notice @-mentions the advisor.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional
from urllib.parse import quote

import aiohttp

from bot.wecom.sender import SenderId

log = logging.getLogger(__name__)

DEFAULT_RASA_URL = "http://localhost:5005"
KF_STATE_BOT, KF_STATE_QUEUE, KF_STATE_HUMAN = 1, 2, 3


class RasaUnavailable(Exception):
    """Rasa's HTTP API did not answer (or refused)."""


class RasaAPI:
    """The few calls of Rasa's HTTP API paging needs; every call has a timeout."""

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
    ):
        from bot.settings import get_settings

        settings = get_settings()
        self.base_url = (base_url or settings.rasa_url or DEFAULT_RASA_URL).rstrip("/")
        if token is None:
            token = settings.rasa_auth_token
        self.token = token
        self.timeout_s = timeout_s
        self.retries = max(1, retries)

    def _url(self, sender_id: str, tail: str) -> str:
        return f"{self.base_url}/conversations/{quote(sender_id, safe=':@')}/{tail}"

    async def _request(
        self, method: str, url: str, *, params: dict | None = None, body: Any = None
    ) -> Any:
        params = dict(params or {})
        if self.token:
            params["token"] = self.token
        last: Exception | None = None
        for attempt in range(self.retries):
            try:
                timeout = aiohttp.ClientTimeout(total=self.timeout_s)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    async with session.request(method, url, params=params, json=body) as resp:
                        if resp.status >= 400:
                            text = await resp.text()
                            raise RasaUnavailable(f"Rasa answered HTTP {resp.status}: {text[:200]}")
                        return await resp.json(content_type=None)
            except RasaUnavailable as exc:
                last = exc
                if "HTTP 4" in str(exc):  # our request is wrong (401, 404...): do not insist
                    break
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                last = RasaUnavailable(
                    f"Rasa at {self.base_url} unreachable: {type(exc).__name__} {exc}"
                )
            if attempt + 1 < self.retries:
                await asyncio.sleep(0.3 * (attempt + 1))
        raise last or RasaUnavailable("Rasa call failed")

    async def append_events(
        self,
        sender_id: str,
        events: list,
        *,
        output_channel: str | None = None,
        side_effects: bool = False,
    ) -> Any:
        params = {"include_events": "NONE"}
        if output_channel:
            params["output_channel"] = output_channel
        if side_effects:
            params["execute_side_effects"] = "true"
        return await self._request(
            "POST", self._url(sender_id, "tracker/events"), params=params, body=events
        )

    async def pause(self, sender_id: str) -> None:
        await self.append_events(sender_id, [{"event": "pause"}])

    async def resume(self, sender_id: str) -> None:
        await self.append_events(sender_id, [{"event": "resume"}])

    async def say(self, sender_id: str, text: str, *, output_channel: str = "wecom") -> None:
        """A bot message to the guest, sent through `output_channel` and kept in the tracker."""
        await self.append_events(
            sender_id,
            [{"event": "bot", "text": text, "metadata": {"source": "paging"}}],
            output_channel=output_channel,
            side_effects=True,
        )

    async def is_paused(self, sender_id: str) -> bool:
        data = await self._request(
            "GET", self._url(sender_id, "tracker"), params={"include_events": "NONE"}
        )
        return bool((data or {}).get("paused"))

    async def conversation(self, sender_id: str, limit: int = 80) -> list[dict]:
        """The guest's and the bot's turns from the tracker, oldest first: {who, text, time}
        (who: guest | bot | staff, staff being paging's notices and advisors' replies)."""
        data = await self._request(
            "GET", self._url(sender_id, "tracker"), params={"include_events": "ALL"}
        )
        turns = []
        for event in (data or {}).get("events") or []:
            kind, text = event.get("event"), event.get("text")
            if kind not in ("user", "bot") or not text or str(text).startswith("/"):
                continue
            meta = event.get("metadata") or {}
            who = (
                "guest"
                if kind == "user"
                else ("staff" if meta.get("source") == "paging" else "bot")
            )
            turns.append({"who": who, "text": str(text), "time": event.get("timestamp")})
        return turns[-limit:]

    async def last_user_messages(self, sender_id: str, count: int = 3) -> list[str]:
        data = await self._request(
            "GET", self._url(sender_id, "tracker"), params={"include_events": "AFTER_RESTART"}
        )
        texts = [
            e.get("text")
            for e in (data or {}).get("events") or []
            if e.get("event") == "user" and e.get("text") and not str(e["text"]).startswith("/")
        ]
        return [t[:120] for t in texts[-count:]]


class HandoffController:
    """Pause/resume Rasa and move the 微信客服 session; `wecom` is a `bot.wecom` services object
    (None: no 微信客服 moves, e.g. in tests of the REST channel)."""

    def __init__(self, rasa: RasaAPI, *, wecom=None, crm=None):
        self.rasa = rasa
        self.wecom = wecom
        self.crm = crm

    async def _kf_identity(self, sender_id: str) -> Optional[tuple[str, str]]:
        sender = SenderId.parse(sender_id)
        if not sender.is_kf or not sender.external_userid:
            return None
        external_userid = sender.external_userid
        open_kfid = None
        if self.crm is not None:
            try:
                guest = await asyncio.to_thread(self.crm.find_guest, sender_id)
                open_kfid = getattr(guest, "kf_open_kfid", None) if guest else None
            except Exception as exc:
                log.info("CRM lookup of %s failed: %s", sender_id, exc)
        if open_kfid is None and self.wecom is not None:
            open_kfid = await self.wecom.kf.last_open_kfid(external_userid)
        return (open_kfid, external_userid) if open_kfid else None

    async def _kf_transfer(
        self, sender_id: str, state: int, servicer: Optional[str] = None
    ) -> Optional[str]:
        if self.wecom is None or getattr(self.wecom, "kf_client", None) is None:
            return None
        identity = await self._kf_identity(sender_id)
        if identity is None:
            return None
        await self.wecom.kf.transfer(identity[0], identity[1], state, servicer)
        return f"微信客服会话状态 → {state}"

    async def take_over(
        self, sender_id: str, advisor_userid: str, *, move_kf: bool = True
    ) -> list[str]:
        """Bot silent for the guest; 微信客服 session to the advisor. Returns problems (empty: ok).

        `move_kf=False` (a takeover from the staff console) leaves the 微信客服 session with the
        API: the advisor answers from the console through kf/send_msg, which WeCom refuses once
        the session is in state 3."""
        problems = []
        try:
            await self.rasa.pause(sender_id)
        except RasaUnavailable as exc:
            problems.append(f"机器人暂停失败（{exc}）")
        if move_kf:
            try:
                await self._kf_transfer(sender_id, KF_STATE_HUMAN, advisor_userid)
            except Exception as exc:
                problems.append(f"微信客服转人工失败（{exc}）")
        return problems

    async def hand_back(self, sender_id: str) -> list[str]:
        problems = []
        try:
            await self._kf_transfer(sender_id, KF_STATE_BOT)
        except Exception as exc:
            problems.append(f"微信客服交还机器人失败（{exc}）")
        try:
            await self.rasa.resume(sender_id)
        except RasaUnavailable as exc:
            problems.append(f"机器人恢复失败（{exc}）")
        return problems

    async def queue(self, sender_id: str) -> None:
        """Nobody on duty: a 微信客服 guest waits in WeCom's queue (state 2)."""
        await self._kf_transfer(sender_id, KF_STATE_QUEUE)

"""微信客服 (WeChat Customer Service): pull messages with sync_msg, send within the rules.

Callbacks only say "something happened" (kf_msg_or_event, with a Token valid 10 minutes and the
OpenKfId); the messages are pulled page by page with `kf/sync_msg` from a cursor kept in the
database. Each page is stored in the inbox and the cursor advanced in one transaction, so a crash
between pages re-reads at most one page (deduped by msgid) and never skips one.

Sending (`kf/send_msg`) is allowed only while the session state is 0 (new) or 1 (bot serving) and
at most 5 times within 48 hours of the guest's last message (95001 when used up). The state is
cached briefly (Redis when configured) and dropped when we change it or WeCom says it changed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

from sqlalchemy import select

from bot.wecom.api.client import SendResult
from bot.wecom.dedupe import kf_message_key, kf_msgid_key, short_id
from bot.wecom.errors import (
    KF_QUOTA_EXHAUSTED,
    KF_SESSION_STATE_INVALID,
    TransportError,
    WeComAPIError,
)
from bot.wecom.delivery.inbox import Inbound
from bot.wecom.models import KfQuota
from bot.wecom.db import aware, utcnow
from bot.wecom.protocol import Event, KfMessage, Kind, KindClass, SendStatus
from bot.wecom.sender import kf_sender

logger = logging.getLogger(__name__)

# kf/service_state values
STATE_NEW = 0  # 未处理 (new, nobody serving)
STATE_BOT = 1  # 由智能助手接待 (the bot serves)
STATE_QUEUE = 2  # 待接入池排队中
STATE_HUMAN = 3  # 由人工接待 (servicer_userid serves)
STATE_ENDED = 4  # 已结束/未开始
SENDABLE_STATES = (STATE_NEW, STATE_BOT)

QUOTA_MESSAGES = 5
QUOTA_WINDOW = dt.timedelta(hours=48)
CALLBACK_TOKEN_TTL_S = 9 * 60  # WeCom: 10 minutes; keep a margin
STATE_CACHE_TTL_S = 30
SYNC_PAGE_LIMIT = 1000
SYNC_MAX_PAGES = 100
INVALID_MSG_TOKEN = 95007  # the callback Token is wrong or older than 10 minutes


def sender_id_for(external_userid: str) -> str:
    return kf_sender(external_userid)


def _ts(value: Any) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(value), dt.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return utcnow()


def normalize(msg: Dict[str, Any]) -> Inbound:
    """One sync_msg item -> an inbox row. Origins: 3 guest, 4 system event, 5 servicer."""
    msgtype = str(msg.get("msgtype") or "unknown")
    try:
        origin = int(msg.get("origin") or 0)
    except (TypeError, ValueError):
        origin = 0
    event: Dict[str, Any] = dict(msg["event"]) if isinstance(msg.get("event"), dict) else {}
    if msgtype == "event":
        external_userid = event.get("external_userid") or msg.get("external_userid")
        open_kfid = event.get("open_kfid") or msg.get("open_kfid")
        kind = Kind.event(event.get("event_type") or "unknown")
    else:
        external_userid = msg.get("external_userid")
        open_kfid = msg.get("open_kfid")
        cls = {3: KindClass.MESSAGE, 0: KindClass.MESSAGE, 5: KindClass.SERVICER}.get(
            origin, KindClass.SYSTEM
        )
        kind = Kind(cls, msgtype)
    text: Dict[str, Any] = msg["text"] if isinstance(msg.get("text"), dict) else {}
    loc: Dict[str, Any] = msg["location"] if isinstance(msg.get("location"), dict) else {}
    message = KfMessage(
        msgtype=msgtype,
        origin=origin,
        msgid=msg.get("msgid"),
        open_kfid=open_kfid,
        external_userid=external_userid,
        servicer_userid=msg.get("servicer_userid"),
        send_time=msg.get("send_time"),
        raw=msg,
        event=event,
        text=str(text.get("content") or "") if msgtype == "text" else None,
        menu_id=str(text["menu_id"]) if msgtype == "text" and text.get("menu_id") else None,
        location_name=loc.get("name"),
        location_address=loc.get("address"),
    )
    return Inbound.of(kf_message_key(msg), message, kind)


class KfService:
    def __init__(self, services) -> None:
        self.s = services
        self._sync_locks: Dict[str, asyncio.Lock] = {}
        self._sync_again: Dict[str, Optional[str]] = {}
        self._state_cache: Dict[Tuple[str, str], Tuple[float, int, Optional[str]]] = {}

    @property
    def client(self):
        return self.s.kf_client

    # ---- pulling ---------------------------------------------------------------------------
    async def sync(
        self,
        open_kfid: str,
        token: Optional[str] = None,
        on_stored: Optional[Callable[[List[str]], None]] = None,
    ) -> List[str]:
        """Pull everything new for `open_kfid`; returns the senders that got new inbox rows.

        `on_stored(senders)` is called after each stored page, so work starts even if a later
        page fails. Concurrent calls for the same account coalesce: the running one does one
        more round.
        """
        lock = self._sync_locks.setdefault(open_kfid, asyncio.Lock())
        if lock.locked():
            self._sync_again[open_kfid] = token
            return []
        senders: List[str] = []
        async with lock:
            while True:
                self._sync_again.pop(open_kfid, None)
                senders.extend(await self._sync_once(open_kfid, token, on_stored))
                if open_kfid not in self._sync_again:
                    break
                token = self._sync_again.get(open_kfid) or token
        return list(dict.fromkeys(senders))

    async def pull(
        self,
        open_kfid: str,
        token: Optional[str],
        on_stored: Optional[Callable[[List[str]], None]] = None,
    ) -> bool:
        """What a kf_msg_or_event notice leads to, in either host (Rasa's channel, the intake
        server): keep the callback token (the sweep and other processes pull with it, and a token
        allows more frequent pulls), then sync. False when it failed: the caller's sweep retries."""
        try:
            if token:
                await self.s.inbox.save_kf_token(open_kfid, token)
            await self.sync(open_kfid, token, on_stored=on_stored)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("kf sync_msg for %s failed (%s); retried by the sweep", open_kfid, exc)
            return False

    async def _sync_once(
        self,
        open_kfid: str,
        token: Optional[str],
        on_stored: Optional[Callable[[List[str]], None]] = None,
    ) -> List[str]:
        if self.client is None:
            logger.error(
                "微信客服 callback for %s but WECOM_KF_SECRET is not set: cannot pull messages",
                open_kfid,
            )
            return []
        state = await self.s.inbox.kf_cursor(open_kfid)
        if not token and state["token"] and state["token_received_at"]:
            if (
                self.s.clock.now() - state["token_received_at"]
            ).total_seconds() < CALLBACK_TOKEN_TTL_S:
                token = state["token"]
        cursor = state["cursor"]
        senders: List[str] = []
        for _ in range(SYNC_MAX_PAGES):
            body: Dict[str, Any] = {
                "limit": SYNC_PAGE_LIMIT,
                "voice_format": 0,
                "open_kfid": open_kfid,
            }
            if cursor:
                body["cursor"] = cursor
            if token:
                body["token"] = token
            try:
                data = await self.client.call("/cgi-bin/kf/sync_msg", body)
            except WeComAPIError as exc:
                if not token or exc.errcode != INVALID_MSG_TOKEN:
                    raise
                logger.info(
                    "kf callback token for %s refused (%s): pulling without it",
                    open_kfid,
                    exc.errcode,
                )
                token = None
                body.pop("token", None)
                data = await self.client.call("/cgi-bin/kf/sync_msg", body)
            items = [m for m in (data.get("msg_list") or []) if isinstance(m, dict)]
            inbound = [normalize(m) for m in items]
            typed = [(m, m.message) for m in inbound]
            guest_msgs = [
                (k.external_userid, _ts(k.send_time))
                for _, k in typed
                if isinstance(k, KfMessage) and k.from_guest and k.external_userid
            ]
            next_cursor = data.get("next_cursor") or None
            new_ids = await self.s.inbox.add_kf_page(open_kfid, inbound, next_cursor, guest_msgs)
            if new_ids:
                stored = {m.dedupe_key: m for m in inbound}
                for m in stored.values():
                    kind, k = Kind.parse(m.kind), m.message
                    assert isinstance(k, KfMessage)
                    if kind.is_(Event.USER_RECALL_MSG):
                        recalled = k.event.get("recall_msgid")
                        if recalled and await self.s.inbox.recall(kf_msgid_key(str(recalled))):
                            logger.info(
                                "kf message %s recalled before it was handled: skipped", recalled
                            )
                    if kind.is_(Event.SESSION_STATUS_CHANGE) and k.external_userid:
                        self.forget_state(open_kfid, k.external_userid)
                page_senders = list(dict.fromkeys(stored[k].sender_id for k in stored))
                senders.extend(page_senders)
                if on_stored is not None:
                    on_stored(page_senders)
            cursor = next_cursor or cursor
            if not data.get("has_more"):
                break
        return list(dict.fromkeys(senders))

    # ---- session state ---------------------------------------------------------------------
    def _state_key(self, open_kfid: str, external_userid: str) -> str:
        return f"concierge:wecom:kfstate:{open_kfid}:{external_userid}"

    async def service_state(
        self, open_kfid: str, external_userid: str, *, fresh: bool = False
    ) -> Tuple[int, Optional[str]]:
        """(service_state, servicer_userid), cached STATE_CACHE_TTL_S seconds."""
        key = (open_kfid, external_userid)
        redis = self.s.redis
        if not fresh:
            if redis is not None:
                try:
                    raw = await redis.get(self._state_key(*key))
                    if raw:
                        cached = json.loads(raw)
                        return int(cached[0]), cached[1]
                except Exception as exc:  # a cache problem must not stop replies
                    logger.warning("kf state cache unavailable: %s", exc)
            else:
                hit = self._state_cache.get(key)
                if hit and hit[0] > self.s.clock.monotonic():
                    return hit[1], hit[2]
        data = await self.client.call(
            "/cgi-bin/kf/service_state/get",
            {"open_kfid": open_kfid, "external_userid": external_userid},
        )
        state, servicer = int(data.get("service_state") or 0), data.get("servicer_userid") or None
        if redis is not None:
            try:
                await redis.set(
                    self._state_key(*key), json.dumps([state, servicer]), ex=STATE_CACHE_TTL_S
                )
            except Exception as exc:
                logger.warning("kf state cache unavailable: %s", exc)
        else:
            self._state_cache[key] = (self.s.clock.monotonic() + STATE_CACHE_TTL_S, state, servicer)
        return state, servicer

    def forget_state(self, open_kfid: str, external_userid: str) -> None:
        self._state_cache.pop((open_kfid, external_userid), None)
        redis = self.s.redis
        if redis is not None:
            asyncio.ensure_future(self._forget_remote(self._state_key(open_kfid, external_userid)))

    async def _forget_remote(self, key: str) -> None:
        try:
            await self.s.redis.delete(key)
        except Exception:
            pass

    async def transfer(
        self,
        open_kfid: str,
        external_userid: str,
        service_state: int,
        servicer_userid: Optional[str] = None,
    ) -> Optional[str]:
        """kf/service_state/trans: e.g. state 3 + servicer_userid hands the guest to an advisor,
        state 1 gives the conversation back to the bot. Returns WeCom's msg_code (if any)."""
        body: Dict[str, Any] = {
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "service_state": int(service_state),
        }
        if servicer_userid:
            body["servicer_userid"] = servicer_userid
        try:
            data = await self.client.call("/cgi-bin/kf/service_state/trans", body)
        finally:
            self.forget_state(open_kfid, external_userid)
        return data.get("msg_code")

    # ---- the 5-in-48h budget ---------------------------------------------------------------
    def _reserve_sync(self, open_kfid: str, external_userid: str) -> str:
        now = self.s.clock.now()
        with self.s.db.session() as s:
            row = s.execute(
                select(KfQuota)
                .where(KfQuota.open_kfid == open_kfid, KfQuota.external_userid == external_userid)
                .with_for_update()
            ).scalar_one_or_none()
            if row is None or now - (aware(row.last_guest_msg_at) or now) > QUOTA_WINDOW:
                return "no_window"
            if row.sent_count >= QUOTA_MESSAGES:
                return "exhausted"
            row.sent_count += 1
            return "ok"

    def _adjust_sync(self, open_kfid: str, external_userid: str, exhausted: bool) -> None:
        with self.s.db.session() as s:
            row = s.get(KfQuota, (open_kfid, external_userid))
            if row is None:
                return
            if exhausted:
                row.sent_count, row.exhausted_at = QUOTA_MESSAGES, self.s.clock.now()
            else:
                row.sent_count = max(0, row.sent_count - 1)

    def quota_sync(self, open_kfid: str, external_userid: str) -> Optional[Dict[str, Any]]:
        with self.s.db.session() as s:
            row = s.get(KfQuota, (open_kfid, external_userid))
            if row is None:
                return None
            return {
                "last_guest_msg_at": aware(row.last_guest_msg_at),
                "sent_count": row.sent_count,
                "exhausted_at": aware(row.exhausted_at),
            }

    # ---- sending ---------------------------------------------------------------------------
    async def send(
        self,
        open_kfid: str,
        external_userid: str,
        message: Dict[str, Any],
        *,
        dedupe_key: Optional[str] = None,
    ) -> SendResult:
        """kf/send_msg, if the session state and the guest's budget allow it.

        `message` is the msgtype part, e.g. {"msgtype": "text", "text": {"content": "..."}}.
        """
        recipient = sender_id_for(external_userid)
        body: Dict[str, Any] = {"touser": external_userid, "open_kfid": open_kfid, **message}
        if dedupe_key:
            body["msgid"] = short_id(dedupe_key, 32)
        try:
            state, servicer = await self.service_state(open_kfid, external_userid)
            if state not in SENDABLE_STATES:  # a cached "no" may be stale (the guest came back)
                state, servicer = await self.service_state(open_kfid, external_userid, fresh=True)
        except (TransportError, WeComAPIError) as exc:
            logger.warning(
                "kf service_state/get failed (%s): sending anyway, WeCom will refuse if not allowed",
                exc,
            )
            state, servicer = STATE_BOT, None
        if state not in SENDABLE_STATES:
            await self.s.outbox.begin(
                "kf",
                "/cgi-bin/kf/send_msg",
                body,
                recipient,
                dedupe_key,
                status=SendStatus.SUPPRESSED.value,
            )
            logger.info(
                "kf reply to %s suppressed: session state %s (servicer %s)",
                recipient,
                state,
                servicer,
            )
            return SendResult(SendStatus.SUPPRESSED.value)
        budget = await self.s.db.run(self._reserve_sync, open_kfid, external_userid)
        if budget != "ok":
            await self.s.outbox.begin(
                "kf",
                "/cgi-bin/kf/send_msg",
                body,
                recipient,
                dedupe_key,
                status=SendStatus.QUOTA_EXHAUSTED.value,
            )
            logger.warning(
                "kf reply to %s not sent: %s (5 messages per 48 h after the guest's last message)",
                recipient,
                budget,
            )
            return SendResult(SendStatus.QUOTA_EXHAUSTED.value)
        result = await self.client.send(
            "/cgi-bin/kf/send_msg",
            body,
            recipient=recipient,
            dedupe_key=dedupe_key,
            errcode_status={
                KF_QUOTA_EXHAUSTED: SendStatus.QUOTA_EXHAUSTED.value,
                KF_SESSION_STATE_INVALID: SendStatus.SUPPRESSED.value,
            },
        )
        if result.status == SendStatus.QUOTA_EXHAUSTED.value:
            await self.s.db.run(self._adjust_sync, open_kfid, external_userid, True)
        elif result.status in (SendStatus.DEAD, SendStatus.DUPLICATE, SendStatus.SUPPRESSED):
            await self.s.db.run(self._adjust_sync, open_kfid, external_userid, False)
        if result.status == SendStatus.SUPPRESSED.value:
            self.forget_state(open_kfid, external_userid)
        return result

    async def send_on_event(
        self,
        code: str,
        message: Dict[str, Any],
        *,
        recipient: Optional[str] = None,
        dedupe_key: Optional[str] = None,
    ) -> SendResult:
        """kf/send_msg_on_event: the welcome message for an enter_session event (code usable once,
        within 20 seconds). Does not use the 48-hour budget."""
        body: Dict[str, Any] = {"code": code, **message}
        if dedupe_key:
            body["msgid"] = short_id(dedupe_key, 32)
        return await self.client.send(
            "/cgi-bin/kf/send_msg_on_event",
            body,
            recipient=recipient,
            dedupe_key=dedupe_key,
            retries=2,
        )

    async def last_open_kfid(self, external_userid: str) -> Optional[str]:
        """The kf account the guest wrote to last (for replies outside a conversation turn)."""

        def lookup() -> Optional[str]:
            with self.s.db.session() as s:
                return s.execute(
                    select(KfQuota.open_kfid)
                    .where(KfQuota.external_userid == external_userid)
                    .order_by(KfQuota.last_guest_msg_at.desc())
                    .limit(1)
                ).scalar_one_or_none()

        return await self.s.db.run(lookup)


def text_message(content: str) -> Dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content}}


def menu_message(head: str, items: List[Tuple[str, str]], tail: str = "") -> Dict[str, Any]:
    """items: (menu id, title) -> a 菜单消息 with click items."""
    return {
        "msgtype": "msgmenu",
        "msgmenu": {
            "head_content": head,
            "list": [
                {"type": "click", "click": {"id": mid, "content": title}} for mid, title in items
            ],
            "tail_content": tail,
        },
    }

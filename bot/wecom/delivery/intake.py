"""Receiving WeCom callbacks: verify, decrypt, parse, dedupe and store -- everything that has to
happen before the HTTP 200, and nothing after it.

Two hosts use it: the Rasa channel (connectors/wecom.py, routes on Rasa's own server) and the
stand-alone intake server (bot/wecom/intake_server.py), which answers WeCom from a process of its
own so the answer never waits behind the NLU on Rasa's event loop. What happens once a message is
stored is the host's business, through two hooks:

- `on_stored(sender_id)`: new inbox rows for this sender (the channel starts its worker; the
  intake server tells Rasa);
- `on_kf_notice(open_kfid, token)`: a 微信客服 kf_msg_or_event callback (record the token, pull
  with sync_msg). Such a notice carries no message -- WeCom keeps the messages until we pull them
  from our durable cursor -- so its 200 does not wait for the database: a notice lost with a
  dying process is made up by the catch-up sync at start and by the next notice.

Answers: 200 (stored, or a duplicate), 403 forged/stale signature, 400 malformed, 413 too large,
503 when the message could not be stored (WeCom retries) -- never a 500.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional

from bot.wecom.surfaces import aibot as aibot_mod
from bot.wecom.surfaces import app as app_mod
from bot.wecom.config import WeComConfig
from bot.wecom.crypto import CallbackCrypto, parse_xml
from bot.wecom.dedupe import xml_callback_key
from bot.wecom.errors import CallbackError, MalformedCallback
from bot.wecom.delivery.inbox import Inbound
from bot.wecom.messages import REPLIES
from bot.wecom.protocol import Event, Kind, KindClass, Surface
from bot.wecom.sender import KF_SYSTEM
from bot.ops.logs import correlation, correlation_of
from bot.ops.metrics import CALLBACK_SECONDS

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
# Response header with the time the connector spent on a callback (ms), for benchmarks: WeCom
# ignores it; the sandbox reports it beside the answer time it measured itself.
HANDLE_MS_HEADER = "X-Concierge-Handle-Ms"
# The intake server's proof to Rasa's /webhooks/wecom/inbox (WECOM_INBOX_TOKEN).
INBOX_TOKEN_HEADER = "X-Concierge-Inbox-Token"


def inbox_caller_allowed(
    presented: Optional[str], remote_ip: Optional[str], token: Optional[str]
) -> bool:
    """May this caller wake Rasa's inbox route? With a token configured, only with that token
    (compared in constant time); without one, only from loopback (a developer machine)."""
    import hmac
    import ipaddress

    if token:
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "replace"), token.encode("utf-8")
        )
    try:
        return ipaddress.ip_address((remote_ip or "").strip("[]")).is_loopback
    except ValueError:
        return False


SURFACES = tuple(s.value for s in Surface)


@dataclass(frozen=True)
class Answer:
    status: int
    text: str = ""
    content_type: str = "text/plain; charset=utf-8"


class StoreUnavailable(Exception):
    """An accepted callback could not be stored: answer 503 so WeCom retries."""


class CallbackIntake:
    def __init__(
        self,
        config: WeComConfig,
        services,
        *,
        on_stored: Callable[[str], None],
        on_kf_notice: Callable[[str, Optional[str]], None],
    ) -> None:
        self.config = config
        self.services = services
        self.on_stored = on_stored
        self.on_kf_notice = on_kf_notice
        self.crypto: Dict[str, Optional[CallbackCrypto]] = {}
        for surface in SURFACES:
            sc = config.surface(surface)
            self.crypto[surface] = (
                CallbackCrypto(
                    sc.token, sc.aes_key, sc.receive_id, max_skew_s=config.max_clock_skew_s
                )
                if sc.enabled
                else None
            )

    def surfaces(self) -> Dict[str, bool]:
        return {s: c is not None for s, c in self.crypto.items()}

    async def handle(
        self,
        surface: str,
        method: str,
        args: Mapping[str, Optional[str]],
        body: bytes,
        remote: str = "",
    ) -> Answer:
        started = time.perf_counter()
        answer = await self._handle(surface, method, args, body, remote)
        CALLBACK_SECONDS.labels(surface, str(answer.status)).observe(time.perf_counter() - started)
        return answer

    async def _handle(
        self, surface: str, method: str, args: Mapping[str, Optional[str]], body: bytes, remote: str
    ) -> Answer:
        crypto = self.crypto.get(surface)
        if crypto is None:
            logger.error("WeCom %s callback refused: no token/AES key configured", surface)
            return Answer(503, "surface not configured")
        signature, timestamp, nonce = (
            args.get("msg_signature"),
            args.get("timestamp"),
            args.get("nonce"),
        )
        try:
            if method == "GET":
                echostr = (args.get("echostr") or "").replace(
                    " ", "+"
                )  # a raw '+' decoded as space
                return Answer(200, crypto.verify_url(signature, timestamp, nonce, echostr))
            if len(body or b"") > MAX_BODY_BYTES:
                return Answer(413, "payload too large")
            if surface == "aibot":
                return await self._accept_aibot(
                    crypto.decrypt_json(body, signature, timestamp, nonce), crypto
                )
            xml = crypto.decrypt_xml(body, signature, timestamp, nonce)
            raw = parse_xml(xml)
            if surface == "kf" or is_kf_notice(raw):
                # WeCom sends kf_msg_or_event to the callback URL of the app that manages 微信客服,
                # which may be the self-built app's URL: accept it on either route.
                return await self._accept_kf(raw)
            await self.store(app_mod.normalize(xml, raw))
            return Answer(200)
        except CallbackError as exc:
            level = logging.WARNING if exc.status == 403 else logging.INFO
            logger.log(
                level,
                "WeCom %s callback refused (%s): %s from %s",
                surface,
                exc.status,
                exc,
                remote,
            )
            return Answer(exc.status, type(exc).__name__)
        except StoreUnavailable:
            return Answer(503, "temporarily unavailable")
        except Exception:
            logger.exception("WeCom %s callback failed", surface)
            return Answer(503, "temporarily unavailable")

    async def store(self, inbound: Inbound) -> Optional[int]:
        """Persist before acknowledging; returns the new inbox id, or None for a duplicate."""
        with correlation(correlation_of(inbound.dedupe_key, inbound.payload)):
            return await self._store(inbound)

    async def _store(self, inbound: Inbound) -> Optional[int]:
        deduper = self.services.deduper
        try:
            if await deduper.seen(inbound.dedupe_key):
                return None
        except Exception as exc:  # the fast path is optional
            logger.warning("dedupe cache unavailable: %s", exc)
        try:
            new_id = await self.services.inbox.add(inbound)
        except Exception as exc:
            logger.exception("could not store WeCom message %s", inbound.dedupe_key)
            raise StoreUnavailable() from exc
        try:
            await deduper.mark(inbound.dedupe_key)
        except Exception:
            pass
        if new_id is None:
            logger.info("WeCom retry/replay of %s ignored", inbound.dedupe_key)
        else:
            self.on_stored(inbound.sender_id)
        return new_id

    async def _accept_kf(self, raw: Dict[str, Any]) -> Answer:
        if is_kf_notice(raw):
            open_kfid = str(raw.get("OpenKfId") or "")
            if not open_kfid:
                raise MalformedCallback("kf_msg_or_event without OpenKfId")
            self.on_kf_notice(open_kfid, raw.get("Token") or None)
            return Answer(200)
        # Anything else on this URL (account auth changes, ...) is recorded, not acted upon.
        event = str(raw.get("Event") or raw.get("MsgType") or "unknown").lower()
        await self.store(
            Inbound(
                xml_callback_key("kf", raw),
                Surface.KF.value,
                str(KF_SYSTEM),
                str(Kind(KindClass.SYSTEM, event)),
                {"surface": "kf", "raw": raw},
            )
        )
        return Answer(200)

    async def _accept_aibot(self, message: Dict[str, Any], crypto: CallbackCrypto) -> Answer:
        try:
            inbound = aibot_mod.normalize(message, self.config.aibot_name)
        except ValueError as exc:
            raise MalformedCallback(str(exc)) from None
        if inbound is None:
            return Answer(200)
        await self.store(inbound)
        if Kind.parse(inbound.kind).is_(Event.ENTER_CHAT):
            return Answer(
                200,
                crypto.passive_json_reply(aibot_mod.welcome_reply(REPLIES["welcome"])),
                "application/json",
            )
        return Answer(200)


def is_kf_notice(raw: Dict[str, Any]) -> bool:
    return (
        str(raw.get("MsgType") or "").lower() == "event"
        and str(raw.get("Event") or "").lower() == "kf_msg_or_event"
    )

"""The inbox's protocol, typed: surfaces, kinds, statuses, and one frozen message class per surface.

The inbox stores a message as JSON (`wecom_inbox.payload`); the classes here read and write
exactly the keys stored so far, so rows written before these classes existed read the same and
the database needs no migration. The Enums are `str` Enums whose values are the stored strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, Mapping, Optional, Union

from bot.wecom.sender import KF_SYSTEM, SenderId


class Surface(str, Enum):
    KF = "kf"  # 微信客服
    AIBOT = "aibot"  # 智能机器人
    APP = "app"  # the self-built app (advisors)


class InboxStatus(str, Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    IGNORED = "ignored"
    RECALLED = "recalled"


UNFINISHED = (InboxStatus.PENDING.value, InboxStatus.PROCESSING.value)


class OutboxStatus(str, Enum):
    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"
    SUPPRESSED = "suppressed"
    QUOTA_EXHAUSTED = "quota_exhausted"


class SendStatus(str, Enum):
    """What one send came to (`SendResult.status`): an outbox status, or one of two outcomes that
    write no new row (a dedupe key used before; held back by the local rate limit)."""

    SENT = "sent"
    DUPLICATE = "duplicate"
    DEFERRED = "deferred"
    RETRY = "retry"
    DEAD = "dead"
    SUPPRESSED = "suppressed"
    QUOTA_EXHAUSTED = "quota_exhausted"


class KindClass(str, Enum):
    """What the prefix of a stored kind says: `event:enter_session`, `servicer:text`, `text`."""

    MESSAGE = ""
    EVENT = "event"
    SERVICER = "servicer"  # an advisor's own message in 微信客服 (recorded only)
    SYSTEM = "system"  # account-level news (recorded only)


class Event(str, Enum):
    """The events the bot acts on (any other is recorded)."""

    ENTER_SESSION = "enter_session"  # 微信客服: the guest opened the chat (welcome code)
    MSG_SEND_FAIL = "msg_send_fail"
    USER_RECALL_MSG = "user_recall_msg"
    SESSION_STATUS_CHANGE = "session_status_change"
    ENTER_CHAT = "enter_chat"  # 智能机器人 single chat opened


KIND_MAX = 32  # wecom_inbox.kind


@dataclass(frozen=True)
class Kind:
    cls: KindClass
    name: str

    @classmethod
    def parse(cls, value: str) -> "Kind":
        head, sep, rest = (value or "").partition(":")
        if sep:
            try:
                return cls(KindClass(head), rest)
            except ValueError:
                pass
        return cls(KindClass.MESSAGE, value or "")

    @classmethod
    def event(cls, name: str) -> "Kind":
        return cls(KindClass.EVENT, name or "unknown")

    def __str__(self) -> str:
        text = f"{self.cls.value}:{self.name}" if self.cls is not KindClass.MESSAGE else self.name
        return text[:KIND_MAX]

    @property
    def is_event(self) -> bool:
        return self.cls is KindClass.EVENT

    @property
    def is_text(self) -> bool:
        return self.cls is KindClass.MESSAGE and self.name == "text"

    def is_(self, event: Event) -> bool:
        return self.cls is KindClass.EVENT and self.name == event.value


def _str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _dict(value: Any) -> Dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _int(value: Any) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# Keys never passed on to Rasa as metadata: the raw body, the one-use aibot reply URL.
PRIVATE_KEYS = ("raw", "response_url")


@dataclass(frozen=True)
class KfMessage:
    """One 微信客服 sync_msg item. Origins: 3 guest, 4 system event, 5 servicer."""

    msgtype: str
    origin: int = 0
    msgid: Optional[str] = None
    open_kfid: Optional[str] = None
    external_userid: Optional[str] = None
    servicer_userid: Optional[str] = None
    send_time: Optional[int] = None
    text: Optional[str] = None
    menu_id: Optional[str] = None  # a 菜单消息 click
    location_name: Optional[str] = None
    location_address: Optional[str] = None
    event: Dict[str, Any] = field(default_factory=dict)
    raw: Dict[str, Any] = field(default_factory=dict)

    surface = Surface.KF

    @property
    def sender(self) -> SenderId:
        return SenderId.kf(self.external_userid) if self.external_userid else KF_SYSTEM

    @property
    def from_guest(self) -> bool:
        return self.origin == 3

    @property
    def welcome_code(self) -> Optional[str]:
        return _str(self.event.get("welcome_code")) or None

    def to_payload(self) -> Dict[str, Any]:
        payload: Dict[str, Any] = {
            "surface": "kf",
            "msgtype": self.msgtype,
            "origin": self.origin,
            "msgid": self.msgid,
            "open_kfid": self.open_kfid,
            "external_userid": self.external_userid,
            "servicer_userid": self.servicer_userid,
            "send_time": self.send_time,
            "raw": self.raw,
        }
        if self.msgtype == "text":
            payload["text"] = self.text or ""
            if self.menu_id:
                payload["menu_id"] = self.menu_id
        elif self.msgtype == "location":
            payload["location_name"] = self.location_name
            payload["location_address"] = self.location_address
        if self.event:
            payload["event"] = self.event
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> "KfMessage":
        return cls(
            msgtype=str(p.get("msgtype") or "unknown"),
            origin=_int(p.get("origin")) or 0,
            msgid=_str(p.get("msgid")),
            open_kfid=_str(p.get("open_kfid")),
            external_userid=_str(p.get("external_userid")),
            servicer_userid=_str(p.get("servicer_userid")),
            send_time=_int(p.get("send_time")),
            text=_str(p.get("text")),
            menu_id=_str(p.get("menu_id")),
            location_name=_str(p.get("location_name")),
            location_address=_str(p.get("location_address")),
            event=_dict(p.get("event")),
            raw=_dict(p.get("raw")),
        )


@dataclass(frozen=True)
class AibotMessage:
    """One 智能机器人 callback (JSON): a single chat, or a group where the bot is @-mentioned."""

    msgtype: str
    userid: str
    msgid: Optional[str] = None
    chatid: Optional[str] = None
    chattype: str = "single"
    aibotid: Optional[str] = None
    response_url: Optional[str] = None  # usable once, within an hour
    text: Optional[str] = None  # with the @-mentions stripped
    mentioned: bool = False
    event: Dict[str, Any] = field(default_factory=dict)
    raw: Dict[str, Any] = field(default_factory=dict)

    surface = Surface.AIBOT

    @property
    def sender(self) -> SenderId:
        return SenderId.wecom(self.userid)

    @property
    def in_group(self) -> bool:
        return self.chattype == "group"

    def to_payload(self) -> Dict[str, Any]:
        payload: Dict[str, Any] = {
            "surface": "aibot",
            "msgtype": self.msgtype,
            "msgid": self.msgid,
            "userid": self.userid,
            "chatid": self.chatid,
            "chattype": self.chattype,
            "aibotid": self.aibotid,
            "response_url": self.response_url,
            "raw": self.raw,
        }
        if self.text is not None:
            payload["text"] = self.text
            payload["mentioned"] = self.mentioned
        elif self.msgtype == "event":
            payload["event"] = self.event
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> "AibotMessage":
        return cls(
            msgtype=str(p.get("msgtype") or "unknown"),
            userid=str(p.get("userid") or ""),
            msgid=_str(p.get("msgid")),
            chatid=_str(p.get("chatid")),
            chattype=str(p.get("chattype") or "single"),
            aibotid=_str(p.get("aibotid")),
            response_url=_str(p.get("response_url")),
            text=_str(p.get("text")),
            mentioned=bool(p.get("mentioned")),
            event=_dict(p.get("event")),
            raw=_dict(p.get("raw")),
        )


@dataclass(frozen=True)
class AppMessage:
    """An advisor's message (or event) in the self-built app: what an app command handler gets."""

    userid: str
    msgtype: str  # text, image, voice, location, link, event, ...
    text: Optional[str] = None
    event: Optional[str] = None  # e.g. click, enter_agent, template_card_event
    event_key: Optional[str] = None
    agent_id: Optional[str] = None
    msgid: Optional[str] = None
    create_time: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict)

    surface = Surface.APP

    @property
    def sender(self) -> SenderId:
        return SenderId.wecom(self.userid)

    @property
    def sender_id(self) -> str:
        return str(self.sender)

    def to_payload(self) -> Dict[str, Any]:
        payload: Dict[str, Any] = {
            "surface": "app",
            "msgtype": self.msgtype,
            "userid": self.userid,
            "msgid": self.msgid,
            "agent_id": self.agent_id,
            "create_time": self.create_time,
            "raw": self.raw,
        }
        if self.msgtype == "text":
            payload["text"] = self.text or ""
        elif self.msgtype == "event":
            payload["event"] = self.event or ""
            payload["event_key"] = self.event_key
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> "AppMessage":
        return cls(
            userid=str(p.get("userid") or ""),
            msgtype=str(p.get("msgtype") or "unknown"),
            text=_str(p.get("text")),
            event=_str(p.get("event")),
            event_key=_str(p.get("event_key")),
            agent_id=_str(p.get("agent_id")),
            msgid=_str(p.get("msgid")),
            create_time=_int(p.get("create_time")),
            raw=_dict(p.get("raw")),
        )


SurfaceMessage = Union[KfMessage, AibotMessage, AppMessage]
_BY_SURFACE = {
    Surface.KF.value: KfMessage,
    Surface.AIBOT.value: AibotMessage,
    Surface.APP.value: AppMessage,
}


def message_from_payload(surface: str, payload: Mapping[str, Any]) -> SurfaceMessage:
    cls = _BY_SURFACE.get(surface)
    if cls is None:
        raise ValueError(f"unknown WeCom surface {surface!r}")
    return cls.from_payload(payload)  # type: ignore[attr-defined,no-any-return]


def public_metadata(payload: Mapping[str, Any]) -> Dict[str, Any]:
    """A stored payload without what Rasa must not see (raw body, reply URL, private keys)."""
    return {k: v for k, v in payload.items() if k not in PRIVATE_KEYS and not k.startswith("_")}

"""In-memory state of the WeCom sandbox: issued tokens, the API call log, injected faults, and the
three kinds of conversation (微信客服 guests, groups with the 智能机器人, advisors in the app)."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Tuple

from bot.settings import get_settings, load_sandbox_settings
from bot.wecom import dev_defaults

KF_QUOTA = 5
KF_WINDOW_S = 48 * 3600
CALLBACK_TOKEN_TTL_S = 600
WELCOME_CODE_TTL_S = 20
RESPONSE_URL_TTL_S = 3600
APP_DUPLICATE_CHECK_S = 1800  # message/send's duplicate_check_interval: default, maximum
APP_DUPLICATE_CHECK_MAX_S = 4 * 3600


@dataclass
class Secrets:
    """The same values the connector uses: WECOM_* env, else the dev defaults."""

    corp_id: str
    kf_token: str
    kf_aes_key: str
    kf_secret: str
    aibot_token: str
    aibot_aes_key: str
    app_token: str
    app_aes_key: str
    app_secret: str
    app_agent_id: str

    @classmethod
    def load(cls) -> "Secrets":
        w = get_settings().wecom
        d = dev_defaults

        def pick(name: str, default: str) -> str:
            return w.get(name) or default

        return cls(
            corp_id=get_settings().wecom_corp_id or d.CORP_ID,
            kf_token=pick("KF_TOKEN", d.KF_TOKEN),
            kf_aes_key=pick("KF_AES_KEY", d.KF_AES_KEY),
            kf_secret=pick("KF_SECRET", d.KF_SECRET),
            aibot_token=pick("AIBOT_TOKEN", d.AIBOT_TOKEN),
            aibot_aes_key=pick("AIBOT_AES_KEY", d.AIBOT_AES_KEY),
            app_token=pick("APP_TOKEN", d.APP_TOKEN),
            app_aes_key=pick("APP_AES_KEY", d.APP_AES_KEY),
            app_secret=pick("APP_SECRET", d.APP_SECRET),
            app_agent_id=pick("APP_AGENT_ID", d.APP_AGENT_ID),
        )


@dataclass
class Fault:
    path: str
    errcode: Optional[int] = None
    delay_s: float = 0.0
    status: Optional[int] = None  # an HTTP status instead of a WeCom errcode (outage)
    times: int = 1

    def as_dict(self) -> Dict[str, Any]:
        return {
            "path": self.path,
            "errcode": self.errcode,
            "delay_s": self.delay_s,
            "status": self.status,
            "times": self.times,
        }


@dataclass
class KfSession:
    state: int = 0
    servicer_userid: Optional[str] = None
    last_guest_msg_at: float = 0.0
    sent_since_guest_msg: int = 0


@dataclass
class SandboxState:
    secrets: Secrets = field(default_factory=Secrets.load)
    # Read at construction (bot.core.settings.load_sandbox_settings), not cached: each sandbox a
    # test builds sees that test's environment.
    connector_url: str = field(default_factory=lambda: load_sandbox_settings().connector_url)
    token_ttl_s: int = field(default_factory=lambda: load_sandbox_settings().token_ttl_s)
    callback_retries: int = field(default_factory=lambda: load_sandbox_settings().callback_retries)
    callback_timeout_s: float = field(
        default_factory=lambda: load_sandbox_settings().callback_timeout_s
    )
    open_kfid: str = dev_defaults.SANDBOX_OPEN_KFID
    aibot_id: str = dev_defaults.SANDBOX_AIBOT_ID
    aibot_name: str = field(
        default_factory=lambda: load_sandbox_settings().aibot_name
        or dev_defaults.SANDBOX_AIBOT_NAME
    )
    robot_keys: Tuple[str, ...] = (dev_defaults.SANDBOX_ROBOT_KEY,)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._seq = itertools.count(1)
        self.tokens: Dict[str, Tuple[str, float]] = {}
        self.calls: List[Dict[str, Any]] = []
        self.faults: List[Fault] = []
        self.feed: List[Dict[str, Any]] = []  # what the chat page shows
        self.kf_messages: Dict[str, List[Dict[str, Any]]] = defaultdict(
            list
        )  # open_kfid -> sync_msg items
        self.kf_callback_tokens: Dict[str, float] = {}
        self.kf_sessions: Dict[Tuple[str, str], KfSession] = {}
        self.kf_msgids: Dict[str, set] = defaultdict(set)
        self.welcome_codes: Dict[str, Dict[str, Any]] = {}
        self.response_codes: Dict[str, Dict[str, Any]] = {}
        self.send_times: Dict[str, Deque[float]] = defaultdict(deque)  # rate windows
        self.app_checked: Dict[str, float] = {}  # message/send duplicate check: json -> until
        self.tags: List[Dict[str, Any]] = []
        self.contacts: Dict[str, Dict[str, Any]] = {}  # external_userid -> name, follow_user
        self.media: Dict[str, Dict[str, Any]] = {}  # media_id -> data, content_type, app
        self.msg_templates: List[Dict[str, Any]] = []
        self.deliveries: List[Dict[str, Any]] = []
        self.extensions: Dict[str, Any] = {}  # state of API modules of their own (groupmsg, ...)

    # ---- helpers ---------------------------------------------------------------------------
    def next_seq(self) -> int:
        return next(self._seq)

    def new_id(self, prefix: str = "") -> str:
        return prefix + secrets.token_hex(8)

    def issue_token(self, app: str) -> str:
        token = "sbx_" + secrets.token_urlsafe(24)
        self.tokens[token] = (app, time.time() + self.token_ttl_s)
        return token

    def token_status(self, token: Optional[str]) -> Tuple[Optional[str], Optional[int]]:
        """-> (app, None) if valid, else (None, errcode)."""
        if not token:
            return None, 41001
        item = self.tokens.get(token)
        if item is None:
            return None, 40014
        app, expires = item
        if time.time() >= expires:
            return None, 42001
        return app, None

    def expire_tokens(self) -> int:
        n = len(self.tokens)
        for token, (app, _) in list(self.tokens.items()):
            self.tokens[token] = (app, 0.0)
        return n

    def take_fault(self, path: str) -> Optional[Fault]:
        for fault in self.faults:
            if fault.path == path and fault.times > 0:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def rate_hit(self, key: str, limit: int, window_s: float) -> bool:
        """Count one event; False when it would exceed `limit` per `window_s`."""
        now = time.time()
        events = self.send_times[key]
        while events and events[0] <= now - window_s:
            events.popleft()
        if len(events) >= limit:
            return False
        events.append(now)
        return True

    def app_duplicate(self, body: Dict[str, Any]) -> Tuple[Optional[str], bool]:
        """message/send with `enable_duplicate_check: 1` -> (its key, whether the same request
        JSON was delivered within its `duplicate_check_interval`); (None, False) without the
        check. The interval defaults to 1800 s and is at most 4 hours (WeCom documents the
        maximum, not an answer beyond it: a larger value counts as 4 hours)."""
        if str(body.get("enable_duplicate_check", 0)) != "1":
            return None, False
        now = time.time()
        for key, until in list(self.app_checked.items()):
            if until <= now:
                del self.app_checked[key]
        key = json.dumps(body, sort_keys=True, ensure_ascii=False)
        return key, key in self.app_checked

    def app_delivered(self, key: Optional[str], body: Dict[str, Any]) -> None:
        """Remember a delivered message/send for its duplicate check (only once delivered: a
        refused one, e.g. over the rate limit, may be sent again)."""
        if key is None:
            return
        try:
            interval = int(body.get("duplicate_check_interval") or APP_DUPLICATE_CHECK_S)
        except (TypeError, ValueError):
            interval = APP_DUPLICATE_CHECK_S
        self.app_checked[key] = time.time() + max(1, min(interval, APP_DUPLICATE_CHECK_MAX_S))

    def add_feed(
        self, channel: str, key: str, sender: str, text: str, **extra: Any
    ) -> Dict[str, Any]:
        item = {
            "seq": self.next_seq(),
            "time": time.time(),
            "channel": channel,
            "key": key,
            "from": sender,
            "text": text,
            **extra,
        }
        self.feed.append(item)
        return item

    def session(self, open_kfid: str, external_userid: str) -> KfSession:
        return self.kf_sessions.setdefault((open_kfid, external_userid), KfSession())

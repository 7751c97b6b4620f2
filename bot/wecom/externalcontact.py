"""客户联系 (external contacts) and group robots: corp tags on guests, mass sends, robot webhooks.

These go through the self-built app's token (the app must be granted 客户联系 permissions in the
admin console), are logged in the outbox like every send, and retried there when WeCom is down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import quote

from bot.wecom.api.client import SendResult
from bot.wecom.errors import WeComAPIError
from bot.wecom.messages import ROBOT_TEXT_MAX_BYTES, truncate_utf8


def _services(services):
    from bot.wecom.services import get_services

    return services or get_services()


# externalcontact/get answers these when the id is nobody's contact (e.g. a 微信客服 guest who
# never added an advisor) or is not an external userid at all.
NOT_A_CONTACT_ERRCODES = frozenset({84061, 40096})
MAX_FOLLOW_PAGES = 20  # 500 follow_user a page: far more advisors than any guest has


@dataclass(frozen=True)
class FollowUser:
    """A member (advisor) who holds the contact, as `follow_user` lists them."""

    userid: str
    createtime: int = 0
    remark: str = ""
    tag_ids: Tuple[str, ...] = ()
    remark_mobiles: Tuple[str, ...] = ()  # phones the advisor noted (matching a booking profile)


@dataclass(frozen=True)
class ExternalContact:
    external_userid: str
    name: str = ""
    follow_user: Tuple[FollowUser, ...] = field(default_factory=tuple)
    unionid: str = ""  # the WeChat unionid, when the corp has a bound 公众号/小程序

    @property
    def follow_userids(self) -> List[str]:
        return [f.userid for f in self.follow_user]


def _follow_user(item: Any) -> Optional[FollowUser]:
    if not isinstance(item, dict):
        return None
    userid = str(item.get("userid") or "").strip()
    if not userid:
        return None
    try:
        createtime = int(item.get("createtime") or 0)
    except (TypeError, ValueError):
        createtime = 0
    tags = tuple(
        str(t.get("tag_id"))
        for t in item.get("tags") or []
        if isinstance(t, dict) and t.get("tag_id")
    )
    mobiles = tuple(str(m) for m in item.get("remark_mobiles") or [] if m)
    return FollowUser(userid, createtime, str(item.get("remark") or ""), tags, mobiles)


async def get_contact(external_userid: str, *, services=None) -> Optional[ExternalContact]:
    """externalcontact/get: the contact and every advisor who holds it (all `follow_user` pages).

    None when WeCom says the id is nobody's contact; WeComAPIError / TransportError for the rest
    (no app secret, WeCom down), so a caller can tell "no owner" from "could not ask"."""
    s = _services(services)
    if s.app_client is None:
        raise WeComAPIError(-3, "no app secret configured", "/cgi-bin/externalcontact/get")
    follow: List[FollowUser] = []
    name, unionid, cursor = "", "", ""
    for _ in range(MAX_FOLLOW_PAGES):
        params = {"external_userid": external_userid}
        if cursor:
            params["cursor"] = cursor
        try:
            data = await s.app_client.call(
                "/cgi-bin/externalcontact/get", None, method="GET", params=params
            )
        except WeComAPIError as exc:
            if exc.errcode in NOT_A_CONTACT_ERRCODES:
                return None
            raise
        name = name or str((data.get("external_contact") or {}).get("name") or "")
        unionid = unionid or str((data.get("external_contact") or {}).get("unionid") or "")
        follow.extend(f for f in map(_follow_user, data.get("follow_user") or []) if f)
        cursor = str(data.get("next_cursor") or "")
        if not cursor:
            break
    return ExternalContact(external_userid, name, tuple(follow), unionid)


async def mark_tag(
    userid: str,
    external_userid: str,
    add_tag: Iterable[str] = (),
    remove_tag: Iterable[str] = (),
    *,
    dedupe_key: Optional[str] = None,
    services=None,
) -> SendResult:
    """externalcontact/mark_tag: add/remove corp tag ids on a guest as seen by advisor `userid`."""
    s = _services(services)
    body: Dict[str, Any] = {
        "userid": userid,
        "external_userid": external_userid,
        "add_tag": list(add_tag),
        "remove_tag": list(remove_tag),
    }
    if s.app_client is None:
        await s.outbox.begin(
            "app",
            "/cgi-bin/externalcontact/mark_tag",
            body,
            external_userid,
            dedupe_key,
            status="dead",
        )
        return SendResult("dead")
    return await s.app_client.send(
        "/cgi-bin/externalcontact/mark_tag", body, recipient=external_userid, dedupe_key=dedupe_key
    )


async def add_msg_template(
    *,
    sender: Optional[str] = None,
    external_userid: Optional[List[str]] = None,
    chat_type: str = "single",
    text: Optional[str] = None,
    attachments: Optional[List[Dict[str, Any]]] = None,
    chat_id_list: Optional[List[str]] = None,
    dedupe_key: Optional[str] = None,
    services=None,
) -> SendResult:
    """externalcontact/add_msg_template: a mass-send task; the advisor confirms it in WeCom.

    The answer (in `result.response`) has `msgid` and `fail_list` (guests WeCom refused, e.g. over
    their monthly cap). Enforcing our own caps and consent is the caller's job (marketing)."""
    s = _services(services)
    body: Dict[str, Any] = {"chat_type": chat_type}
    if sender:
        body["sender"] = sender
    if external_userid:
        body["external_userid"] = list(external_userid)
    if chat_id_list:
        body["chat_id_list"] = list(chat_id_list)
    if text:
        body["text"] = {"content": text}
    if attachments:
        body["attachments"] = attachments
    if s.app_client is None:
        await s.outbox.begin(
            "app",
            "/cgi-bin/externalcontact/add_msg_template",
            body,
            sender,
            dedupe_key,
            status="dead",
        )
        return SendResult("dead")
    return await s.app_client.send(
        "/cgi-bin/externalcontact/add_msg_template", body, recipient=sender, dedupe_key=dedupe_key
    )


async def send_group_robot(
    key: str,
    text: Optional[str] = None,
    *,
    markdown: Optional[str] = None,
    mentioned_list: Optional[List[str]] = None,
    dedupe_key: Optional[str] = None,
    services=None,
) -> SendResult:
    """Group robot webhook (webhook/send?key=KEY), at most 20 messages a minute per robot."""
    s = _services(services)
    if markdown is not None:
        body: Dict[str, Any] = {
            "msgtype": "markdown",
            "markdown": {"content": truncate_utf8(markdown, 4096)},
        }
    else:
        body = {
            "msgtype": "text",
            "text": {"content": truncate_utf8(text or "", ROBOT_TEXT_MAX_BYTES)},
        }
        if mentioned_list:
            body["text"]["mentioned_list"] = list(mentioned_list)
    path = f"/cgi-bin/webhook/send?key={quote(key, safe='')}"  # the key travels with the row for retries
    return await s.robot_client.send(
        path,
        body,
        recipient=f"robot:{key[:8]}",
        dedupe_key=dedupe_key,
        auth=False,
        limiter=s.robot_limiter,
        limiter_keys=(f"robot:{key}",),
        max_wait_s=3.0,
    )

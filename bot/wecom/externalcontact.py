"""客户联系 (external contacts) and group robots: corp tags on guests, mass sends, robot webhooks.

These go through the self-built app's token (the app must be granted 客户联系 permissions in the
admin console), are logged in the outbox like every send, and retried there when WeCom is down.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional
from urllib.parse import quote

from bot.wecom.client import SendResult
from bot.wecom.messages import ROBOT_TEXT_MAX_BYTES, truncate_utf8


def _services(services):
    from bot.wecom.services import get_services

    return services or get_services()


async def mark_tag(userid: str, external_userid: str, add_tag: Iterable[str] = (), remove_tag: Iterable[str] = (),
                   *, dedupe_key: Optional[str] = None, services=None) -> SendResult:
    """externalcontact/mark_tag: add/remove corp tag ids on a guest as seen by advisor `userid`."""
    s = _services(services)
    body: Dict[str, Any] = {"userid": userid, "external_userid": external_userid,
                            "add_tag": list(add_tag), "remove_tag": list(remove_tag)}
    if s.app_client is None:
        await s.outbox.begin("app", "/cgi-bin/externalcontact/mark_tag", body, external_userid, dedupe_key,
                             status="dead")
        return SendResult("dead")
    return await s.app_client.send("/cgi-bin/externalcontact/mark_tag", body, recipient=external_userid,
                                   dedupe_key=dedupe_key)


async def add_msg_template(*, sender: Optional[str] = None, external_userid: Optional[List[str]] = None,
                           chat_type: str = "single", text: Optional[str] = None,
                           attachments: Optional[List[Dict[str, Any]]] = None, chat_id_list: Optional[List[str]] = None,
                           dedupe_key: Optional[str] = None, services=None) -> SendResult:
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
        await s.outbox.begin("app", "/cgi-bin/externalcontact/add_msg_template", body, sender, dedupe_key,
                             status="dead")
        return SendResult("dead")
    return await s.app_client.send("/cgi-bin/externalcontact/add_msg_template", body, recipient=sender,
                                   dedupe_key=dedupe_key)


async def send_group_robot(key: str, text: Optional[str] = None, *, markdown: Optional[str] = None,
                           mentioned_list: Optional[List[str]] = None, dedupe_key: Optional[str] = None,
                           services=None) -> SendResult:
    """Group robot webhook (webhook/send?key=KEY), at most 20 messages a minute per robot."""
    s = _services(services)
    if markdown is not None:
        body: Dict[str, Any] = {"msgtype": "markdown", "markdown": {"content": truncate_utf8(markdown, 4096)}}
    else:
        body = {"msgtype": "text", "text": {"content": truncate_utf8(text or "", ROBOT_TEXT_MAX_BYTES)}}
        if mentioned_list:
            body["text"]["mentioned_list"] = list(mentioned_list)
    path = f"/cgi-bin/webhook/send?key={quote(key, safe='')}"  # the key travels with the row for retries
    return await s.robot_client.send(path, body, recipient=f"robot:{key[:8]}", dedupe_key=dedupe_key, auth=False,
                                     limiter=s.robot_limiter, limiter_keys=(f"robot:{key}",), max_wait_s=3.0)

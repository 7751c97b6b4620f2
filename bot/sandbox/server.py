"""The WeCom sandbox: a stand-in for qyapi.weixin.qq.com on 127.0.0.1 (aiohttp.web).

It speaks WeCom's wire protocol -- the /cgi-bin paths the concierge calls, access tokens, errcodes
(40014 invalid token, 42001 expired, 45009 rate limit, 95000 bad open_kfid, 95001 kf quota,
95018 session state...) -- and plays WeCom towards the connector: `/_sandbox/...` turns a
simulated guest or advisor message into the ENCRYPTED callback WeCom would POST (for 微信客服 the
kf_msg_or_event notice; the connector then pulls the message with sync_msg), retrying like WeCom
when the connector does not answer 200. Every API call is logged (`GET /_sandbox/calls`) and can
be made to fail (`POST /_sandbox/faults`). `/` is a chat page for people.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import aiohttp
from aiohttp import web

from bot.sandbox import contacts, media, oauth

# What the route modules share with this one (kept apart so they need not import the server).
from bot.sandbox.common import HTTP, STATE, ApiError  # noqa: F401 - re-exported
from bot.sandbox.common import read_json as _json
from bot.sandbox.common import state_of as _state
from bot.sandbox.state import (
    CALLBACK_TOKEN_TTL_S,
    KF_QUOTA,
    KF_WINDOW_S,
    RESPONSE_URL_TTL_S,
    WELCOME_CODE_TTL_S,
    Fault,
    SandboxState,
)
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.delivery.intake import HANDLE_MS_HEADER

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
NO_TOKEN_PATHS = {"/cgi-bin/gettoken", "/cgi-bin/webhook/send", "/cgi-bin/aibot/response"}
APP_OF_PATH = {  # which app's token a path needs (48002 otherwise, as WeCom answers)
    "/cgi-bin/kf/": "kf",
    "/cgi-bin/message/send": "app",
    "/cgi-bin/auth/": "app",
    "/cgi-bin/externalcontact/": "app",
}
KF_MSGTYPES = {
    "text",
    "image",
    "voice",
    "video",
    "file",
    "link",
    "miniprogram",
    "msgmenu",
    "location",
    "ca_link",
}


def _utf8_len(text: str) -> int:
    return len((text or "").encode("utf-8"))


# ==== the WeCom API ==============================================================================


@web.middleware
async def cgi_middleware(request: web.Request, handler):
    if not request.path.startswith("/cgi-bin/"):
        return await handler(request)
    state = _state(request)
    body: Any = None
    if request.method == "POST" and request.content_type.startswith("multipart/"):
        body = {"_multipart": True}  # media/upload: the handler reads the form itself
    elif request.method == "POST":
        raw = await request.read()
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (ValueError, UnicodeDecodeError):
            body = {"_unparsable": raw[:200].decode("utf-8", "replace")}
    query = {
        k: ("***" if k in ("corpsecret", "access_token") else v) for k, v in request.query.items()
    }
    call = {
        "seq": state.next_seq(),
        "time": time.time(),
        "method": request.method,
        "path": request.path,
        "query": query,
        "body": body,
    }
    state.calls.append(call)
    request["call"] = call  # a handler may note what it did (e.g. a suppressed duplicate)

    fault = state.take_fault(request.path)
    if fault is not None:
        call["fault"] = fault.as_dict()
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.status:
            call["status"] = fault.status
            return web.Response(status=fault.status, text="sandbox fault")
        if fault.errcode is not None:
            call["errcode"] = fault.errcode
            return web.json_response(
                {"errcode": fault.errcode, "errmsg": f"sandbox fault {fault.errcode}"}
            )
    try:
        if isinstance(body, dict) and "_unparsable" in body:
            raise ApiError(47001, "data format error")
        if request.path not in NO_TOKEN_PATHS:
            app, errcode = state.token_status(request.query.get("access_token"))
            if errcode:
                raise ApiError(
                    errcode,
                    {
                        41001: "access_token missing",
                        40014: "invalid access_token",
                        42001: "access_token expired",
                    }[errcode],
                )
            for prefix, needed in APP_OF_PATH.items():
                if request.path.startswith(prefix) and app != needed:
                    raise ApiError(
                        48002, f"api forbidden: this path needs the {needed} app's token"
                    )
            request["app_name"] = app
        request["body"] = body if isinstance(body, dict) else {}
        result = await handler(request)
    except ApiError as exc:
        call["errcode"] = exc.errcode
        return web.json_response({"errcode": exc.errcode, "errmsg": exc.errmsg})
    if isinstance(result, web.StreamResponse):
        return result
    result = {"errcode": 0, "errmsg": "ok", **result}
    call["errcode"] = result["errcode"]
    return web.json_response(result)


async def gettoken(request: web.Request) -> Dict[str, Any]:
    state = _state(request)
    s = state.secrets
    if request.query.get("corpid") != s.corp_id:
        raise ApiError(40013, "invalid corpid")
    secret = request.query.get("corpsecret")
    app = {s.kf_secret: "kf", s.app_secret: "app"}.get(secret or "")
    if app is None:
        raise ApiError(40001, "invalid credential (corpsecret)")
    return {"access_token": state.issue_token(app), "expires_in": state.token_ttl_s}


async def message_send(request: web.Request) -> Dict[str, Any]:
    state, body = _state(request), request["body"]
    if str(body.get("agentid")) != str(state.secrets.app_agent_id):
        raise ApiError(40056, "invalid agentid")
    touser = [u for u in str(body.get("touser") or "").split("|") if u]
    if not touser:
        raise ApiError(40031, "invalid userid list")
    msgtype = body.get("msgtype")
    if msgtype not in (
        "text",
        "textcard",
        "markdown",
        "news",
        "template_card",
        "image",
        "file",
        "voice",
    ):
        raise ApiError(40008, "invalid message type")
    if msgtype in ("image", "file", "voice"):
        media.check_app_media(state, body)
    checked, duplicate = state.app_duplicate(body)
    if duplicate:
        # "在一定时间间隔内，同样内容（请求json）的消息，不会重复收到": WeCom documents no error
        # for it, so the answer is the usual one; only the call log says what happened.
        request.get("call", {})["duplicate"] = True
        return {
            "invaliduser": "",
            "invalidparty": "",
            "invalidtag": "",
            "msgid": state.new_id("app"),
        }
    for user in touser:
        if not (
            state.rate_hit(f"app-min:{user}", 30, 60)
            and state.rate_hit(f"app-hour:{user}", 1000, 3600)
        ):
            raise ApiError(45009, "api freq out of limit (30/min, 1000/h per member)")
    msgid = state.new_id("app")
    for user in touser:
        if msgtype == "text":
            content = (body.get("text") or {}).get("content") or ""
            if not content:
                raise ApiError(44004, "empty content")
            content = content.encode("utf-8")[:2048].decode("utf-8", "ignore")  # WeCom truncates
            state.add_feed("app", user, "bot", content)
        elif msgtype == "textcard":
            card = body.get("textcard") or {}
            if not card.get("title") or not card.get("description") or not card.get("url"):
                raise ApiError(41054, "textcard needs title, description, url")
            state.add_feed(
                "app", user, "bot", f"【{card['title']}】\n{card['description']}", card=card
            )
        elif msgtype == "markdown":
            state.add_feed("app", user, "bot", (body.get("markdown") or {}).get("content") or "")
        else:
            state.add_feed("app", user, "bot", f"[{msgtype}]")
    state.app_delivered(checked, body)
    return {"invaliduser": "", "invalidparty": "", "invalidtag": "", "msgid": msgid}


def _kf_check_account(state: SandboxState, open_kfid: Optional[str]) -> None:
    if open_kfid != state.open_kfid:
        raise ApiError(95000, "invalid open_kfid")


async def kf_sync_msg(request: web.Request) -> Dict[str, Any]:
    state, body = _state(request), request["body"]
    open_kfid = body.get("open_kfid") or state.open_kfid
    _kf_check_account(state, open_kfid)
    token = body.get("token")
    if token:
        issued = state.kf_callback_tokens.get(token)
        if issued is None or time.time() - issued > CALLBACK_TOKEN_TTL_S:
            raise ApiError(95007, "invalid msg token")
    cursor = str(body.get("cursor") or "")
    start = int(cursor[1:]) if cursor.startswith("c") and cursor[1:].isdigit() else 0
    try:
        limit = max(1, min(1000, int(body.get("limit") or 1000)))
    except (TypeError, ValueError):
        raise ApiError(40058, "invalid limit") from None
    horizon = time.time() - 3 * 86400  # WeCom keeps three days
    messages = state.kf_messages[open_kfid]
    page = [m for m in messages[start : start + limit] if m["send_time"] >= horizon]
    end = min(len(messages), start + limit)
    return {"next_cursor": f"c{end}", "has_more": 1 if end < len(messages) else 0, "msg_list": page}


def _kf_validate_message(body: Dict[str, Any]) -> str:
    msgtype = body.get("msgtype")
    if msgtype not in KF_MSGTYPES:
        raise ApiError(40008, "invalid message type")
    if msgtype == "text":
        content = (body.get("text") or {}).get("content") or ""
        if not content:
            raise ApiError(44004, "empty content")
        if _utf8_len(content) > 2048:
            raise ApiError(45002, "content size out of limit (2048 bytes)")
        return content
    if msgtype == "msgmenu":
        menu = body.get("msgmenu") or {}
        items = menu.get("list") or []
        if len(items) > 10:
            raise ApiError(40058, "msgmenu.list holds 10 items at most")
        if (
            _utf8_len(menu.get("head_content") or "") > 1024
            or _utf8_len(menu.get("tail_content") or "") > 1024
        ):
            raise ApiError(45002, "msgmenu head/tail content over 1024 bytes")
        titles = []
        for item in items:
            click = item.get("click") or {}
            if item.get("type") == "click" and (not click.get("id") or _utf8_len(click["id"]) > 64):
                raise ApiError(40058, "msgmenu click.id must be 1-64 bytes")
            titles.append((item.get(item.get("type") or "") or {}).get("content") or "")
        return (menu.get("head_content") or "") + "".join(f"\n[{t}]" for t in titles)
    return f"[{msgtype}]"


async def kf_send_msg(request: web.Request) -> Dict[str, Any]:
    state, body = _state(request), request["body"]
    open_kfid, touser = body.get("open_kfid"), body.get("touser")
    _kf_check_account(state, open_kfid)
    if not touser:
        raise ApiError(40003, "invalid touser")
    text = _kf_validate_message(body)
    session = state.kf_sessions.get((open_kfid, touser))
    if session is None or time.time() - session.last_guest_msg_at > KF_WINDOW_S:
        raise ApiError(95001, "send msg count limit: the guest has not written in 48 hours")
    if session.state not in (0, 1):
        raise ApiError(95018, "send msg session status invalid")
    if session.sent_since_guest_msg >= KF_QUOTA:
        raise ApiError(95001, "send msg count limit (5 per 48 hours)")
    msgid = body.get("msgid") or state.new_id("kfs")
    if msgid in state.kf_msgids[open_kfid]:
        raise ApiError(40058, "duplicate msgid")
    state.kf_msgids[open_kfid].add(msgid)
    session.sent_since_guest_msg += 1
    extra = (
        {"menu": (body.get("msgmenu") or {}).get("list")}
        if body.get("msgtype") == "msgmenu"
        else {}
    )
    state.add_feed("kf", touser, "bot", text, msgtype=body.get("msgtype"), **extra)
    return {"msgid": msgid}


async def kf_send_msg_on_event(request: web.Request) -> Dict[str, Any]:
    state, body = _state(request), request["body"]
    code = body.get("code")
    info = state.welcome_codes.get(code or "")
    if info is None or info["used"] or time.time() - info["issued"] > WELCOME_CODE_TTL_S:
        raise ApiError(95016 if info and info["used"] else 40058, "invalid or used welcome code")
    if body.get("msgtype") not in ("text", "msgmenu"):
        raise ApiError(40008, "send_msg_on_event takes text or msgmenu")
    text = _kf_validate_message(body)
    info["used"] = True
    extra = (
        {"menu": (body.get("msgmenu") or {}).get("list")}
        if body.get("msgtype") == "msgmenu"
        else {}
    )
    state.add_feed(
        "kf",
        info["external_userid"],
        "bot",
        text,
        msgtype=body.get("msgtype"),
        welcome=True,
        **extra,
    )
    return {"msgid": body.get("msgid") or state.new_id("kfe")}


async def kf_state_get(request: web.Request) -> Dict[str, Any]:
    state, body = _state(request), request["body"]
    _kf_check_account(state, body.get("open_kfid"))
    session = state.kf_sessions.get((body.get("open_kfid"), body.get("external_userid")))
    if session is None:
        return {"service_state": 4, "servicer_userid": ""}
    return {"service_state": session.state, "servicer_userid": session.servicer_userid or ""}


async def kf_state_trans(request: web.Request) -> Dict[str, Any]:
    state, body = _state(request), request["body"]
    open_kfid, ext = body.get("open_kfid"), body.get("external_userid")
    _kf_check_account(state, open_kfid)
    try:
        new_state = int(body.get("service_state"))
    except (TypeError, ValueError):
        raise ApiError(40058, "invalid service_state") from None
    if new_state not in (1, 2, 3, 4):
        raise ApiError(95016, "state transition not allowed")
    if new_state == 3 and not body.get("servicer_userid"):
        raise ApiError(95014, "servicer_userid required for state 3")
    session = state.session(open_kfid, ext)
    session.state = new_state
    session.servicer_userid = body.get("servicer_userid") if new_state == 3 else None
    label = {
        1: "由智能助手接待",
        2: "进入排队",
        3: f"转给顾问 {session.servicer_userid}",
        4: "会话结束",
    }[new_state]
    state.add_feed("kf", ext, "system", f"（会话状态：{label}）")
    return {"msg_code": state.new_id("mc") if new_state in (3, 4) else ""}


async def mark_tag(request: web.Request) -> Dict[str, Any]:
    state, body = _state(request), request["body"]
    if not body.get("userid") or not body.get("external_userid"):
        raise ApiError(40003, "userid and external_userid required")
    if not body.get("add_tag") and not body.get("remove_tag"):
        raise ApiError(40058, "add_tag or remove_tag required")
    contacts.check_mark_tag(state, body)
    state.tags.append(dict(body))
    return {}


async def webhook_send(request: web.Request) -> Dict[str, Any]:
    state, body = _state(request), request["body"]
    key = request.query.get("key")
    if key not in state.robot_keys:
        raise ApiError(93000, "invalid webhook url")
    if not state.rate_hit(f"robot:{key}", 20, 60):
        raise ApiError(45009, "api freq out of limit (20/min per robot)")
    msgtype = body.get("msgtype")
    content = (
        (body.get(msgtype) or {}).get("content")
        if msgtype in ("text", "markdown")
        else f"[{msgtype}]"
    )
    if not content:
        raise ApiError(44004, "empty content")
    state.add_feed("robot", key, "bot", content)
    return {}


async def aibot_response(request: web.Request) -> Dict[str, Any]:
    state, body = _state(request), request["body"]
    code = request.query.get("response_code") or ""
    info = state.response_codes.get(code)
    if info is None or time.time() - info["issued"] > RESPONSE_URL_TTL_S:
        raise ApiError(40058, "invalid or expired response_code")
    if info["used"]:
        raise ApiError(40058, "response_code already used")
    msgtype = body.get("msgtype")
    if msgtype not in ("markdown", "template_card"):
        raise ApiError(40008, "response_url takes markdown or template_card")
    info["used"] = True
    content = (body.get("markdown") or {}).get("content") or "[template_card]"
    state.add_feed(info["channel"], info["key"], "bot", content)
    return {}


# ==== playing WeCom towards the connector =======================================================


def _crypto(state: SandboxState, surface: str) -> CallbackCrypto:
    s = state.secrets
    token, key, receive_id = {
        "kf": (s.kf_token, s.kf_aes_key, s.corp_id),
        "app": (s.app_token, s.app_aes_key, s.corp_id),
        "aibot": (s.aibot_token, s.aibot_aes_key, ""),
    }[surface]
    return CallbackCrypto(token, key, receive_id, max_skew_s=None)


async def deliver(
    app: web.Application, surface: str, body: str, params: Dict[str, str]
) -> Dict[str, Any]:
    """POST a callback the way WeCom does: retried on timeouts, refused connections and 5xx."""
    state: SandboxState = app[STATE]
    # SANDBOX_CONNECTOR_URL may list several intake servers (a load balancer in front of
    # replicas): callbacks go to them in turn, and a retry goes to the next one.
    bases = [u.strip().rstrip("/") for u in state.connector_url.split(",") if u.strip()]
    first = state.next_connector = (getattr(state, "next_connector", -1) + 1) % len(bases)
    url = f"{bases[first]}/webhooks/wecom/{surface}"
    http: aiohttp.ClientSession = app[HTTP]
    result: Dict[str, Any] = {"delivered": False, "status": None, "attempts": 0, "url": url}
    for attempt in range(1 + max(0, state.callback_retries)):
        result["attempts"] = attempt + 1
        url = result["url"] = f"{bases[(first + attempt) % len(bases)]}/webhooks/wecom/{surface}"
        started, handle_ms = time.monotonic(), None
        try:
            async with http.post(
                url,
                params=params,
                data=body.encode("utf-8"),
                timeout=aiohttp.ClientTimeout(total=state.callback_timeout_s),
            ) as resp:
                result["status"], result["body"] = resp.status, await resp.text()
                handle_ms = resp.headers.get(HANDLE_MS_HEADER)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            result["status"], result["body"] = None, f"{type(exc).__name__}: {exc}"
        # The connector's answer time as WeCom sees it (what the 5-second limit applies to).
        result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 2)
        if result["status"] is not None and handle_ms:  # the connector's own view, if it tells
            try:
                result["connector_ms"] = float(handle_ms)
            except ValueError:
                pass
        state.deliveries.append(
            {
                "time": time.time(),
                "surface": surface,
                "status": result["status"],
                "elapsed_ms": result["elapsed_ms"],
            }
        )
        if result["status"] == 200:
            result["delivered"] = True
            return result
        if result["status"] is not None and result["status"] < 500:
            return result  # refused (403/400...): a retry would be refused too
        await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
    return result


async def deliver_with_replays(
    app: web.Application, surface: str, body: str, params: Dict[str, str], replays: int
) -> Dict[str, Any]:
    """Deliver a callback, then the very same callback `replays` more times at once (a replay
    attack, or WeCom retrying a callback whose 200 it missed): the connector must act once."""
    result = await deliver(app, surface, body, params)
    if replays > 0:
        again = await asyncio.gather(*(deliver(app, surface, body, params) for _ in range(replays)))
        result["replays"] = [
            {"status": r["status"], "elapsed_ms": r.get("elapsed_ms")} for r in again
        ]
    return result


def _replays(data: Dict[str, Any]) -> int:
    try:
        return max(0, min(10, int(data.get("replays") or 0)))
    except (TypeError, ValueError):
        raise web.HTTPBadRequest(text="replays must be an integer 0-10")


def _kf_callback(state: SandboxState, open_kfid: str):
    token = "ENC" + state.new_id()
    state.kf_callback_tokens[token] = time.time()
    xml = (
        "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><CreateTime>{ts}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
        "<Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{kfid}]]></OpenKfId></xml>"
    ).format(corp=state.secrets.corp_id, ts=int(time.time()), token=token, kfid=open_kfid)
    return _crypto(state, "kf").encrypt_xml(xml, to_user=state.secrets.corp_id)


def _kf_item(
    state: SandboxState, open_kfid: str, external_userid: str, msgtype: str, data: Dict[str, Any]
):
    item: Dict[str, Any] = {
        "msgid": state.new_id("kfm"),
        "open_kfid": open_kfid,
        "external_userid": external_userid,
        "send_time": int(time.time()),
        "origin": 3,
        "msgtype": msgtype,
    }
    if msgtype == "text":
        text: Dict[str, Any] = {"content": data.get("text") or ""}
        if data.get("menu_id"):
            text["menu_id"] = data["menu_id"]
        item["text"] = text
    elif msgtype == "location":
        item["location"] = {
            "latitude": data.get("latitude", 18.25),
            "longitude": data.get("longitude", 109.51),
            "name": data.get("name", "三亚凤凰国际机场"),
            "address": data.get("address", "海南省三亚市天涯区"),
        }
    elif msgtype in ("image", "voice", "video", "file"):
        item[msgtype] = {"media_id": state.new_id("media")}
    elif msgtype == "link":
        item["link"] = {
            "title": data.get("title", "链接"),
            "desc": "",
            "url": data.get("url", "https://example.com"),
            "pic_url": "",
        }
    else:
        item[msgtype] = data.get(msgtype) or {}
    return item


async def guest_kf(request: web.Request) -> web.Response:
    """A 微信客服 guest writes: store the message for sync_msg, then send the kf_msg_or_event callback."""
    state, data = _state(request), await _json(request)
    ext = str(data.get("external_userid") or "").strip()
    if not ext:
        raise web.HTTPBadRequest(text="external_userid required")
    replays = _replays(data)
    open_kfid = data.get("open_kfid") or state.open_kfid
    msgtype = data.get("msgtype") or "text"
    item = _kf_item(state, open_kfid, ext, msgtype, data)
    media.register_guest_media(state, item, data)
    state.kf_messages[open_kfid].append(item)
    session = state.session(open_kfid, ext)
    session.last_guest_msg_at, session.sent_since_guest_msg = time.time(), 0
    if session.state == 4:
        session.state, session.servicer_userid = 0, None
    label = item.get("text", {}).get("content") if msgtype == "text" else f"[{msgtype}]"
    state.add_feed("kf", ext, "guest", label, msgid=item["msgid"])
    body, params = _kf_callback(state, open_kfid)
    delivery = await deliver_with_replays(request.app, "kf", body, params, replays)
    return web.json_response({"msgid": item["msgid"], "delivery": delivery})


async def guest_kf_enter(request: web.Request) -> web.Response:
    """The guest opens the 微信客服 chat (enter_session, with a welcome_code valid 20 s)."""
    state, data = _state(request), await _json(request)
    ext = str(data.get("external_userid") or "").strip()
    if not ext:
        raise web.HTTPBadRequest(text="external_userid required")
    open_kfid = data.get("open_kfid") or state.open_kfid
    code = state.new_id("wc")
    state.welcome_codes[code] = {"external_userid": ext, "issued": time.time(), "used": False}
    session = state.session(open_kfid, ext)
    if session.state == 4:
        session.state = 0
    item = {
        "msgid": state.new_id("kfe"),
        "send_time": int(time.time()),
        "origin": 4,
        "msgtype": "event",
        "event": {
            "event_type": "enter_session",
            "open_kfid": open_kfid,
            "external_userid": ext,
            "scene": data.get("scene", "sandbox"),
            "scene_param": data.get("scene_param", ""),
            "welcome_code": code,
        },
    }
    state.kf_messages[open_kfid].append(item)
    state.add_feed("kf", ext, "system", "（客人进入会话）")
    body, params = _kf_callback(state, open_kfid)
    return web.json_response(
        {"welcome_code": code, "delivery": await deliver(request.app, "kf", body, params)}
    )


async def guest_kf_recall(request: web.Request) -> web.Response:
    state, data = _state(request), await _json(request)
    ext, msgid = data.get("external_userid"), data.get("msgid")
    if not ext or not msgid:
        raise web.HTTPBadRequest(text="external_userid and msgid required")
    open_kfid = data.get("open_kfid") or state.open_kfid
    state.kf_messages[open_kfid].append(
        {
            "msgid": state.new_id("kfe"),
            "send_time": int(time.time()),
            "origin": 4,
            "msgtype": "event",
            "event": {
                "event_type": "user_recall_msg",
                "open_kfid": open_kfid,
                "external_userid": ext,
                "recall_msgid": msgid,
            },
        }
    )
    state.add_feed("kf", ext, "system", "（客人撤回了一条消息）")
    body, params = _kf_callback(state, open_kfid)
    return web.json_response({"delivery": await deliver(request.app, "kf", body, params)})


async def guest_group(request: web.Request) -> web.Response:
    """Someone writes in a group (or, with no chatid, a single chat) with the 智能机器人."""
    state, data = _state(request), await _json(request)
    userid, text = str(data.get("userid") or "").strip(), str(data.get("text") or "")
    if not userid:
        raise web.HTTPBadRequest(text="userid required")
    replays = _replays(data)
    chatid = str(data.get("chatid") or "").strip()
    chattype = data.get("chattype") or ("group" if chatid else "single")
    channel, key = ("group", chatid) if chattype == "group" else ("single", userid)
    state.add_feed(channel, key, "guest", text, userid=userid)
    if chattype == "group" and f"@{state.aibot_name}" not in text:
        return web.json_response(
            {"delivery": {"delivered": False, "reason": f"not @{state.aibot_name}"}}
        )
    code = state.new_id("rc")
    state.response_codes[code] = {
        "issued": time.time(),
        "used": False,
        "channel": channel,
        "key": key,
    }
    base = f"{request.scheme}://{request.host}"
    msg: Dict[str, Any] = {
        "msgid": state.new_id("aib"),
        "aibotid": state.aibot_id,
        "chattype": chattype,
        "from": {"userid": userid},
        "response_url": f"{base}/cgi-bin/aibot/response?response_code={code}",
        "msgtype": "text",
        "text": {"content": text},
    }
    if chattype == "group":
        msg["chatid"] = chatid
    body, params = _crypto(state, "aibot").encrypt_json(msg)
    delivery = await deliver_with_replays(request.app, "aibot", body, params, replays)
    return web.json_response({"msgid": msg["msgid"], "delivery": delivery})


async def guest_aibot_enter(request: web.Request) -> web.Response:
    """A user opens the single chat with the 智能机器人 (enter_chat): the welcome is the HTTP answer."""
    state, data = _state(request), await _json(request)
    userid = str(data.get("userid") or "").strip()
    if not userid:
        raise web.HTTPBadRequest(text="userid required")
    msg = {
        "msgid": state.new_id("aibe"),
        "aibotid": state.aibot_id,
        "chattype": "single",
        "from": {"userid": userid},
        "create_time": int(time.time()),
        "msgtype": "event",
        "event": {"eventtype": "enter_chat"},
    }
    crypto = _crypto(state, "aibot")
    body, params = crypto.encrypt_json(msg)
    delivery = await deliver(request.app, "aibot", body, params)
    welcome = None
    if delivery.get("delivered") and delivery.get("body"):
        try:
            envelope = json.loads(delivery["body"])
            welcome = crypto.decrypt_json(
                json.dumps({"encrypt": envelope["encrypt"]}),
                envelope["msgsignature"],
                envelope["timestamp"],
                envelope["nonce"],
            )
            state.add_feed(
                "single", userid, "bot", (welcome.get("text") or {}).get("content") or ""
            )
        except Exception as exc:  # a wrong passive reply is what the sandbox should reveal
            delivery["reply_error"] = f"{type(exc).__name__}: {exc}"
    return web.json_response({"delivery": delivery, "welcome": welcome})


async def advisor_app(request: web.Request) -> web.Response:
    """An advisor writes to the self-built app."""
    state, data = _state(request), await _json(request)
    userid, text = str(data.get("userid") or "").strip(), str(data.get("text") or "")
    if not userid:
        raise web.HTTPBadRequest(text="userid required")
    msgid = str(int(time.time() * 1000)) + str(state.next_seq())
    xml = (
        "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        "<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
        "<MsgId>{msgid}</MsgId><AgentID>{agent}</AgentID></xml>"
    ).format(
        corp=state.secrets.corp_id,
        user=userid,
        ts=int(time.time()),
        text=text.replace("]]>", "]]]]><![CDATA[>"),
        msgid=msgid,
        agent=state.secrets.app_agent_id,
    )
    state.add_feed("app", userid, "advisor", text)
    body, params = _crypto(state, "app").encrypt_xml(
        xml, to_user=state.secrets.corp_id, agent_id=state.secrets.app_agent_id
    )
    return web.json_response(
        {"msgid": msgid, "delivery": await deliver(request.app, "app", body, params)}
    )


# ==== inspection and control =====================================================================


async def get_calls(request: web.Request) -> web.Response:
    state = _state(request)
    since = int(request.query.get("since", "0") or 0)
    path = request.query.get("path")
    calls = [c for c in _after(state.calls, since) if not path or c["path"] == path]
    return web.json_response({"calls": calls})


def _after(entries: List[Dict[str, Any]], since: int) -> List[Dict[str, Any]]:
    """Entries with seq > since. The logs are in seq order: a bisection, not a scan, because
    pollers ask every few milliseconds and the logs grow through a long session."""
    return entries[bisect.bisect_right(entries, since, key=lambda e: e["seq"]) :]


async def clear_calls(request: web.Request) -> web.Response:
    _state(request).calls.clear()
    return web.json_response({"ok": True})


async def add_fault(request: web.Request) -> web.Response:
    data = await _json(request)
    if not data.get("path") or not any(k in data for k in ("errcode", "delay_s", "status")):
        raise web.HTTPBadRequest(text="path and one of errcode / delay_s / status required")
    fault = Fault(
        path=str(data["path"]),
        errcode=data.get("errcode"),
        delay_s=float(data.get("delay_s") or 0),
        status=data.get("status"),
        times=int(data.get("times") or 1),
    )
    _state(request).faults.append(fault)
    return web.json_response({"ok": True, "fault": fault.as_dict()})


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [f.as_dict() for f in _state(request).faults]})


async def clear_faults(request: web.Request) -> web.Response:
    _state(request).faults.clear()
    return web.json_response({"ok": True})


async def get_feed(request: web.Request) -> web.Response:
    state = _state(request)
    since = int(request.query.get("since", "0") or 0)
    return web.json_response({"feed": _after(state.feed, since)})


async def kf_state(request: web.Request) -> web.Response:
    """GET: every 微信客服 session; POST {external_userid, service_state, servicer_userid}: set one."""
    state = _state(request)
    if request.method == "POST":
        data = await _json(request)
        session = state.session(
            data.get("open_kfid") or state.open_kfid, str(data.get("external_userid") or "")
        )
        session.state = int(data.get("service_state", session.state))
        session.servicer_userid = data.get("servicer_userid")
    return web.json_response(
        {
            "sessions": [
                {
                    "open_kfid": k[0],
                    "external_userid": k[1],
                    "service_state": s.state,
                    "servicer_userid": s.servicer_userid,
                    "sent_since_guest_msg": s.sent_since_guest_msg,
                    "last_guest_msg_at": s.last_guest_msg_at,
                }
                for k, s in state.kf_sessions.items()
            ]
        }
    )


async def expire_tokens(request: web.Request) -> web.Response:
    return web.json_response({"expired": _state(request).expire_tokens()})


async def reset(request: web.Request) -> web.Response:
    _state(request).reset()
    return web.json_response({"ok": True})


async def info(request: web.Request) -> web.Response:
    state = _state(request)
    return web.json_response(
        {
            "connector_url": state.connector_url,
            "open_kfid": state.open_kfid,
            "aibot_name": state.aibot_name,
            "corp_id": state.secrets.corp_id,
            "app_agent_id": state.secrets.app_agent_id,
            "robot_keys": list(state.robot_keys),
            "tags": state.tags,
            "msg_templates": state.msg_templates,
        }
    )


async def index(request: web.Request) -> web.Response:
    return web.FileResponse(STATIC_DIR / "index.html")


# ==== the application ===========================================================================


async def _open_http(app: web.Application) -> None:
    app[HTTP] = aiohttp.ClientSession()


async def _close_http(app: web.Application) -> None:
    await app[HTTP].close()


def make_app(state: Optional[SandboxState] = None) -> web.Application:
    app = web.Application(client_max_size=2 * 1024 * 1024, middlewares=[cgi_middleware])
    app[STATE] = state or SandboxState()
    app.on_startup.append(_open_http)
    app.on_cleanup.append(_close_http)
    cgi = [
        ("GET", "/cgi-bin/gettoken", gettoken),
        ("POST", "/cgi-bin/message/send", message_send),
        ("POST", "/cgi-bin/kf/sync_msg", kf_sync_msg),
        ("POST", "/cgi-bin/kf/send_msg", kf_send_msg),
        ("POST", "/cgi-bin/kf/send_msg_on_event", kf_send_msg_on_event),
        ("POST", "/cgi-bin/kf/service_state/get", kf_state_get),
        ("POST", "/cgi-bin/kf/service_state/trans", kf_state_trans),
        ("POST", "/cgi-bin/externalcontact/mark_tag", mark_tag),
        ("POST", "/cgi-bin/webhook/send", webhook_send),
        ("POST", "/cgi-bin/aibot/response", aibot_response),
    ]
    for method, path, handler in cgi:
        app.router.add_route(method, path, handler)
    from bot.sandbox import groupmsg  # 客户群发: tasks, results, caps (its own module)

    groupmsg.register(app)
    app.router.add_post("/_sandbox/guest/kf", guest_kf)
    app.router.add_post("/_sandbox/guest/kf/enter", guest_kf_enter)
    app.router.add_post("/_sandbox/guest/kf/recall", guest_kf_recall)
    app.router.add_post("/_sandbox/guest/group", guest_group)
    app.router.add_post("/_sandbox/guest/aibot/enter", guest_aibot_enter)
    app.router.add_post("/_sandbox/advisor/app", advisor_app)
    app.router.add_get("/_sandbox/calls", get_calls)
    app.router.add_delete("/_sandbox/calls", clear_calls)
    app.router.add_post("/_sandbox/faults", add_fault)
    app.router.add_get("/_sandbox/faults", list_faults)
    app.router.add_delete("/_sandbox/faults", clear_faults)
    app.router.add_get("/_sandbox/feed", get_feed)
    app.router.add_route("*", "/_sandbox/kf/state", kf_state)
    app.router.add_post("/_sandbox/tokens/expire", expire_tokens)
    app.router.add_post("/_sandbox/reset", reset)
    app.router.add_get("/_sandbox/info", info)
    app.router.add_get("/", index)
    contacts.add_routes(app)
    media.add_routes(app)
    oauth.register(app)  # WeCom web login for the staff console
    return app

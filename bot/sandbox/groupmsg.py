"""The sandbox's 客户群发 (mass sending to customers): WeCom's task model, limits and statuses.

WeCom does not send a mass message itself: `add_msg_template` creates a *task* pushed to the
advisor (`sender`) who holds the contacts; nothing reaches a customer until that advisor confirms
it in WeCom. Emulated here:

- `externalcontact/add_msg_template`: chat_type single (external_userid, at most 10,000) or
  group (the sender's groups, or chat_id_list); text and/or at most 9 attachments (image, link,
  miniprogram, video, file). Customers who are not the sender's contacts come back in
  `fail_list`. Returns the task's `msgid`.
- `get_groupmsg_list_v2` (by time range, creator, at most 100 a page), `get_groupmsg_task`
  (per advisor: status 0 not sent / 2 sent), `get_groupmsg_send_result` (per customer or group:
  0 not sent, 1 sent, 2 not a contact, 3 already got its mass messages this month),
  `cancel_groupmsg_send`, `remind_groupmsg_send` (at most 3 reminders a day per task).
- The monthly cap: each customer (or group) receives at most `monthly_limit` mass messages a
  calendar month (China time); WeCom's default is as many as the month has days, an admin may set
  it lower (`POST /_sandbox/groupmsg/settings {"monthly_limit": 1}`).
- `POST /_sandbox/groupmsg/confirm {msgid, userid}` is the advisor tapping 发送 in WeCom;
  `GET /_sandbox/groupmsg` lists the tasks; `POST /_sandbox/contacts {userid, external_userid}`
  sets an advisor's contacts (an advisor with no list set is taken to hold every contact).

Errcodes: 40058 for invalid parameters (WeCom's general one), 41063 when a task is no longer
pending, 45033 for the reminder limit; the exact codes WeCom uses for the last two are not
published, these are the sandbox's choice.
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from aiohttp import web

MAX_EXTERNAL_USERIDS = 10_000
MAX_ATTACHMENTS = 9
MAX_REMINDS_PER_DAY = 3
ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")
CHINA = dt.timezone(dt.timedelta(hours=8))
NOT_SENT, SENT, NOT_CONTACT, OVER_LIMIT = 0, 1, 2, 3


def _month(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, CHINA).strftime("%Y-%m")


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, CHINA).strftime("%Y-%m-%d")


@dataclass
class Task:
    msgid: str
    creator: str
    chat_type: str
    text: Optional[str]
    attachments: List[Dict[str, Any]]
    create_time: int
    # per advisor: {"status": 0|2, "send_time": int}; per recipient: external_userid / chat id
    advisors: Dict[str, Dict[str, int]] = field(default_factory=dict)
    results: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    cancelled: bool = False
    reminders: Dict[str, int] = field(default_factory=dict)  # day -> count


@dataclass
class GroupMsgState:
    monthly_limit: Optional[int] = None  # None: as many as the month has days
    contacts: Dict[str, set] = field(default_factory=dict)  # advisor -> external_userids
    groups: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))
    tasks: Dict[str, Task] = field(default_factory=dict)
    received: Dict[tuple, int] = field(default_factory=lambda: defaultdict(int))  # (who, month)

    def is_contact(self, userid: str, external_userid: str) -> bool:
        book = self.contacts.get(userid)
        return book is None or external_userid in book

    def limit(self, ts: float) -> int:
        if self.monthly_limit is not None:
            return self.monthly_limit
        local = dt.datetime.fromtimestamp(ts, CHINA)
        return calendar.monthrange(local.year, local.month)[1]


def _sandbox(request: web.Request):
    from bot.sandbox.common import state_of as _state

    return _state(request)


def _gm(request: web.Request) -> GroupMsgState:
    return _sandbox(request).extensions.setdefault("groupmsg", GroupMsgState())


def _api_error():
    from bot.sandbox.common import ApiError

    return ApiError


def _int(body: Dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    try:
        value = int(body.get(key, default) or default)
    except (TypeError, ValueError):
        raise _api_error()(40058, f"invalid {key}") from None
    return max(low, min(high, value))


# ---- the WeCom API ------------------------------------------------------------------------------


async def add_msg_template(request: web.Request) -> Dict[str, Any]:
    ApiError = _api_error()
    gm, body = _gm(request), request["body"]
    chat_type = body.get("chat_type", "single")
    if chat_type not in ("single", "group"):
        raise ApiError(40058, "chat_type must be single or group")
    text = (body.get("text") or {}).get("content")
    attachments = body.get("attachments") or []
    if not text and not attachments:
        raise ApiError(41048, "text or attachments required")
    if text and len(text.encode("utf-8")) > 4000:
        raise ApiError(45002, "text.content over 4000 bytes")
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise ApiError(40058, f"at most {MAX_ATTACHMENTS} attachments")
    for item in attachments:
        kind = (item or {}).get("msgtype")
        if kind not in ATTACHMENT_TYPES or not isinstance(item.get(kind), dict):
            raise ApiError(40058, f"invalid attachment msgtype {kind!r}")
    sender = body.get("sender")
    externals = body.get("external_userid") or []
    if not isinstance(externals, list) or len(externals) > MAX_EXTERNAL_USERIDS:
        raise ApiError(40058, f"external_userid: at most {MAX_EXTERNAL_USERIDS} per task")
    _sandbox(request).msg_templates.append(dict(body))  # also listed by /_sandbox/info
    now = int(time.time())
    msgid = "msg" + _sandbox(request).new_id()
    task = Task(msgid, sender or "", chat_type, text, attachments, now)
    fail_list: List[str] = []
    if chat_type == "single":
        if not externals and not sender:
            raise ApiError(40058, "external_userid or sender required")
        if sender:
            owners = {sender: [e for e in externals if gm.is_contact(sender, e)]}
            fail_list = [e for e in externals if not gm.is_contact(sender, e)]
            if not externals:  # every contact of the sender
                owners[sender] = sorted(gm.contacts.get(sender, set()))
        else:  # no sender: one task per advisor holding each customer
            owners = defaultdict(list)
            for ext in externals:
                holders = [u for u, book in gm.contacts.items() if ext in book]
                if not holders:
                    fail_list.append(ext)
                for userid in holders:
                    owners[userid].append(ext)
        for userid, targets in owners.items():
            if not targets:
                continue
            task.advisors[userid] = {"status": 0, "send_time": 0}
            for ext in targets:
                task.results[ext] = {
                    "external_userid": ext,
                    "userid": userid,
                    "status": NOT_SENT,
                    "send_time": 0,
                }
    else:
        if not sender:
            raise ApiError(40058, "sender (the group owner) required for chat_type group")
        chats = body.get("chat_id_list") or gm.groups.get(sender) or []
        task.advisors[sender] = {"status": 0, "send_time": 0}
        for chat_id in chats:
            task.results[chat_id] = {
                "chat_id": chat_id,
                "userid": sender,
                "status": NOT_SENT,
                "send_time": 0,
            }
    if not task.advisors:
        return {"fail_list": fail_list, "msgid": ""}
    gm.tasks[msgid] = task
    return {"fail_list": fail_list, "msgid": msgid}


def _task(gm: GroupMsgState, body: Dict[str, Any]) -> Task:
    task = gm.tasks.get(str(body.get("msgid") or ""))
    if task is None:
        raise _api_error()(40058, "invalid msgid")
    return task


def _page(items: List[Any], body: Dict[str, Any], limit_max: int):
    limit = _int(body, "limit", limit_max, 1, limit_max)
    cursor = str(body.get("cursor") or "")
    start = int(cursor) if cursor.isdigit() else 0
    page = items[start : start + limit]
    nxt = str(start + limit) if start + limit < len(items) else ""
    return page, nxt


async def get_groupmsg_list_v2(request: web.Request) -> Dict[str, Any]:
    ApiError = _api_error()
    gm, body = _gm(request), request["body"]
    try:
        start, end = int(body["start_time"]), int(body["end_time"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(40058, "start_time and end_time required") from None
    if end < start or end - start > 31 * 86400:
        raise ApiError(40058, "the time range must be at most one month")
    chat_type = body.get("chat_type", "single")
    creator = body.get("creator")
    found = [
        t
        for t in gm.tasks.values()
        if t.chat_type == chat_type
        and start <= t.create_time <= end
        and (not creator or t.creator == creator)
    ]
    page, nxt = _page(found, body, 100)
    return {
        "next_cursor": nxt,
        "group_msg_list": [
            {
                "msgid": t.msgid,
                "creator": t.creator,
                "create_type": 0,
                "create_time": t.create_time,
                "text": {"content": t.text or ""},
                "attachments": t.attachments,
            }
            for t in page
        ],
    }


async def get_groupmsg_task(request: web.Request) -> Dict[str, Any]:
    task = _task(_gm(request), request["body"])
    rows = [{"userid": u, **v} for u, v in task.advisors.items()]
    page, nxt = _page(rows, request["body"], 1000)
    return {"next_cursor": nxt, "task_list": page}


async def get_groupmsg_send_result(request: web.Request) -> Dict[str, Any]:
    body = request["body"]
    task = _task(_gm(request), body)
    userid = body.get("userid")
    if not userid:
        raise _api_error()(40058, "userid required")
    rows = [dict(r) for r in task.results.values() if r["userid"] == userid]
    page, nxt = _page(rows, body, 1000)
    return {"next_cursor": nxt, "send_list": page}


async def cancel_groupmsg_send(request: web.Request) -> Dict[str, Any]:
    task = _task(_gm(request), request["body"])
    if all(a["status"] == 2 for a in task.advisors.values()):
        raise _api_error()(41063, "every advisor has already sent this task")
    task.cancelled = True
    return {}


async def remind_groupmsg_send(request: web.Request) -> Dict[str, Any]:
    ApiError = _api_error()
    task = _task(_gm(request), request["body"])
    if task.cancelled or all(a["status"] == 2 for a in task.advisors.values()):
        raise ApiError(41063, "the task is no longer pending")
    day = _day(time.time())
    if task.reminders.get(day, 0) >= MAX_REMINDS_PER_DAY:
        raise ApiError(45033, f"at most {MAX_REMINDS_PER_DAY} reminders a day")
    task.reminders[day] = task.reminders.get(day, 0) + 1
    return {}


# ---- playing the advisor --------------------------------------------------------------------------


async def confirm(request: web.Request) -> web.Response:
    """The advisor sends the task in WeCom: each recipient gets it, unless not a contact (2) or
    over the monthly cap (3)."""
    data = await request.json()
    gm = _gm(request)
    task = gm.tasks.get(str(data.get("msgid") or ""))
    userid = data.get("userid")
    if task is None or userid not in task.advisors:
        raise web.HTTPNotFound(text="no such task for this advisor")
    if task.cancelled:
        raise web.HTTPConflict(text="the task was cancelled")
    if task.advisors[userid]["status"] == 2:
        raise web.HTTPConflict(text="already sent")
    now = time.time()
    month = _month(now)
    counts = {SENT: 0, NOT_CONTACT: 0, OVER_LIMIT: 0}
    state = _sandbox(request)
    for key, row in task.results.items():
        if row["userid"] != userid:
            continue
        if task.chat_type == "single" and not gm.is_contact(userid, key):
            row["status"] = NOT_CONTACT
        elif gm.received[(key, month)] >= gm.limit(now):
            row["status"] = OVER_LIMIT
        else:
            row["status"] = SENT
            row["send_time"] = int(now)
            gm.received[(key, month)] += 1
            state.add_feed("groupmsg", key, userid, task.text or "[附件]", msgid=task.msgid)
        counts[row["status"]] += 1
    task.advisors[userid] = {"status": 2, "send_time": int(now)}
    return web.json_response(
        {
            "ok": True,
            "msgid": task.msgid,
            "sent": counts[SENT],
            "not_contact": counts[NOT_CONTACT],
            "over_limit": counts[OVER_LIMIT],
        }
    )


async def list_tasks(request: web.Request) -> web.Response:
    gm = _gm(request)
    return web.json_response(
        {
            "monthly_limit": gm.monthly_limit,
            "tasks": [
                {
                    "msgid": t.msgid,
                    "creator": t.creator,
                    "chat_type": t.chat_type,
                    "text": t.text,
                    "attachments": t.attachments,
                    "create_time": t.create_time,
                    "cancelled": t.cancelled,
                    "advisors": t.advisors,
                    "results": list(t.results.values()),
                    "reminders": t.reminders,
                }
                for t in gm.tasks.values()
            ],
        }
    )


async def settings(request: web.Request) -> web.Response:
    data = await request.json()
    gm = _gm(request)
    if "monthly_limit" in data:
        value = data["monthly_limit"]
        gm.monthly_limit = None if value is None else int(value)
    return web.json_response({"monthly_limit": gm.monthly_limit})


async def contacts(request: web.Request) -> web.Response:
    gm = _gm(request)
    if request.method == "POST":
        data = await request.json()
        userid = data.get("userid")
        if not userid:
            raise web.HTTPBadRequest(text="userid required")
        gm.contacts[userid] = set(data.get("external_userid") or [])
        if "chat_id_list" in data:
            gm.groups[userid] = list(data["chat_id_list"])
    return web.json_response(
        {"contacts": {u: sorted(b) for u, b in gm.contacts.items()}, "groups": dict(gm.groups)}
    )


CGI_ROUTES = [
    ("/cgi-bin/externalcontact/add_msg_template", add_msg_template),
    ("/cgi-bin/externalcontact/get_groupmsg_list_v2", get_groupmsg_list_v2),
    ("/cgi-bin/externalcontact/get_groupmsg_task", get_groupmsg_task),
    ("/cgi-bin/externalcontact/get_groupmsg_send_result", get_groupmsg_send_result),
    ("/cgi-bin/externalcontact/cancel_groupmsg_send", cancel_groupmsg_send),
    ("/cgi-bin/externalcontact/remind_groupmsg_send", remind_groupmsg_send),
]


def register(app: web.Application) -> None:
    """Add the routes (the server's cgi middleware checks tokens and wraps errcodes)."""
    for path, handler in CGI_ROUTES:
        app.router.add_post(path, handler)
    app.router.add_post("/_sandbox/groupmsg/confirm", confirm)
    app.router.add_get("/_sandbox/groupmsg", list_tasks)
    app.router.add_post("/_sandbox/groupmsg/settings", settings)
    app.router.add_route("*", "/_sandbox/contacts", contacts)

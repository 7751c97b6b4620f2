"""客户联系 in the sandbox: which advisors hold which external contacts (`externalcontact/get`).

WeCom answers `GET /cgi-bin/externalcontact/get?external_userid=ID[&cursor=C]` with the contact
and `follow_user`, every member who added the guest (userid, remark, createtime, tags), 500 per
page with `next_cursor`. An id that is nobody's contact (a 微信客服 guest who never added an
advisor) is 84061; a missing one 40096. `mark_tag` by a member who does not hold the contact is
84061 too, so a mirror that picks the wrong advisor fails here as it would in WeCom.

People seed contacts with `POST /_sandbox/externalcontact {external_userid, name, follow_user:
[userid | {userid, remark, createtime}]}` and list them with `GET /_sandbox/externalcontact`.
Advisors' contact lists set for mass sending (`POST /_sandbox/contacts {userid, external_userid}`,
bot/sandbox/groupmsg.py) count too: those advisors are in the guest's `follow_user`.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

from aiohttp import web

from bot.sandbox import common

FOLLOW_USER_PAGE = 500
NOT_A_CONTACT = 84061
INVALID_EXTERNAL_USERID = 40096


async def externalcontact_get(request: web.Request) -> Dict[str, Any]:
    state = request.app[common.STATE]
    ext = (request.query.get("external_userid") or "").strip()
    if not ext:
        raise common.ApiError(INVALID_EXTERNAL_USERID, "invalid external userid")
    contact = _contact(state, ext)
    if contact is None:
        raise common.ApiError(NOT_A_CONTACT, "not external contact")
    cursor = request.query.get("cursor") or ""
    start = int(cursor) if cursor.isdigit() else 0
    follow: List[Dict[str, Any]] = contact["follow_user"]
    page = follow[start : start + FOLLOW_USER_PAGE]
    end = start + len(page)
    external = {
        "external_userid": ext,
        "name": contact["name"],
        "type": 1,
        "gender": 0,
        "avatar": "",
    }
    if contact.get("unionid"):  # WeCom gives it only with a bound 公众号/小程序: seed it to test
        external["unionid"] = contact["unionid"]
    return {
        "external_contact": external,
        "follow_user": page,
        "next_cursor": str(end) if end < len(follow) else "",
    }


def _contact(state, ext: str):
    """The seeded contact, with the advisors whose mass-sending lists hold it added."""
    contact = state.contacts.get(ext)
    gm = getattr(state, "extensions", {}).get("groupmsg")
    holders = sorted(u for u, book in (getattr(gm, "contacts", None) or {}).items() if ext in book)
    if not holders:
        return contact
    contact = dict(contact or {"name": ext, "follow_user": []})
    known = {f["userid"] for f in contact["follow_user"]}
    contact["follow_user"] = list(contact["follow_user"]) + [
        _follow(u, i) for i, u in enumerate(holders) if u not in known
    ]
    return contact


def check_mark_tag(state, body: Dict[str, Any]) -> None:
    """WeCom refuses mark_tag by a member who does not hold the contact (a seeded one)."""
    contact = _contact(state, body.get("external_userid"))
    if contact is None:
        return  # contacts nobody seeded: the sandbox stays permissive for older tests
    if body.get("userid") not in {f["userid"] for f in contact["follow_user"]}:
        raise common.ApiError(NOT_A_CONTACT, "not external contact of this userid")


def _follow(item: Any, index: int) -> Dict[str, Any]:
    if isinstance(item, str):
        item = {"userid": item}
    if not isinstance(item, dict) or not str(item.get("userid") or "").strip():
        raise web.HTTPBadRequest(text="each follow_user needs a userid")
    return {
        "userid": str(item["userid"]).strip(),
        "remark": str(item.get("remark") or ""),
        "description": "",
        "createtime": int(item.get("createtime") or time.time() + index),
        "tags": list(item.get("tags") or []),
        "add_way": 1,
        "oper_userid": str(item["userid"]),
        "remark_mobiles": [str(m) for m in item.get("remark_mobiles") or []],
    }


async def seed_contact(request: web.Request) -> web.Response:
    state, data = request.app[common.STATE], await common.read_json(request)
    ext = str(data.get("external_userid") or "").strip()
    follow = data.get("follow_user")
    if not ext or not isinstance(follow, list) or not follow:
        raise web.HTTPBadRequest(text="external_userid and a non-empty follow_user list required")
    state.contacts[ext] = {
        "name": str(data.get("name") or ext),
        "follow_user": [_follow(f, i) for i, f in enumerate(follow)],
        "unionid": str(data.get("unionid") or ""),
    }
    return web.json_response({"ok": True, "contact": state.contacts[ext]})


async def list_contacts(request: web.Request) -> web.Response:
    return web.json_response({"contacts": request.app[common.STATE].contacts})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/cgi-bin/externalcontact/get", externalcontact_get)
    app.router.add_post("/_sandbox/externalcontact", seed_contact)
    app.router.add_get("/_sandbox/externalcontact", list_contacts)

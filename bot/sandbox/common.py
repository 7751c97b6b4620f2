"""What the sandbox's route modules (contacts, media, oauth, groupmsg) share with its server: the
app keys, WeCom's error answer, and the request helpers. The server imports those modules to
register their routes, so they import this instead of the server."""

from __future__ import annotations

from typing import Any, Dict

import aiohttp
from aiohttp import web

from bot.sandbox.state import SandboxState

STATE = web.AppKey("state", SandboxState)
HTTP = web.AppKey("http", aiohttp.ClientSession)


class ApiError(Exception):
    """Answered as WeCom's {errcode, errmsg}."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errmsg)
        self.errcode, self.errmsg = errcode, errmsg


def state_of(request: web.Request) -> SandboxState:
    return request.app[STATE]


async def read_json(request: web.Request) -> Dict[str, Any]:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="JSON body expected")
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="JSON object expected")
    return data

"""Temporary media in the sandbox: `media/get` and `media/upload`, as WeCom answers them.

A guest's photo or voice message (`POST /_sandbox/guest/kf {msgtype: image|voice,
content_base64?, content_type?}`) is kept here under the media_id the sync_msg item carries;
without content the sandbox makes a small real file (a PNG, an AMR header) so downloads work.
`media/get` answers the bytes with Content-Type and Content-Disposition, or JSON 40007 for an
unknown id; media is served to the app that owns it (kf media with the kf token, as WeCom).
`media/upload?type=...` (multipart field `media`) stores an app's file and answers its media_id;
`message/send` of a `voice`/`image`/`file` needs such a media_id.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Dict

from aiohttp import web

from bot.sandbox import common

# a 1x1 PNG and the AMR-NB magic with one empty frame: small, but real files of their kind
SAMPLE = {
    "image": (
        base64.b64decode(
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
        ),
        "image/png",
        "photo.png",
    ),
    "voice": (b"#!AMR\n" + b"\x3c" + bytes(31), "audio/amr", "voice.amr"),
    "video": (b"\x00\x00\x00\x18ftypmp42", "video/mp4", "video.mp4"),
    "file": (b"sandbox file\n", "application/octet-stream", "file.bin"),
}
UPLOAD_TYPES = ("image", "voice", "video", "file")
MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # WeCom: voice 2 MB, image 10 MB, file 20 MB (kept small here)


def register_guest_media(state, item: Dict[str, Any], data: Dict[str, Any]) -> None:
    """Keep the bytes behind a guest's media item (called when the guest 'sends' it)."""
    kind = item.get("msgtype")
    media_id = (item.get(kind) or {}).get("media_id") if kind in SAMPLE else None
    if not media_id:
        return
    content, ctype, name = SAMPLE[kind]
    if data.get("content_base64"):
        try:
            content = base64.b64decode(str(data["content_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise web.HTTPBadRequest(text="content_base64 is not base64")
        ctype = str(data.get("content_type") or ctype)
    state.media[media_id] = {
        "data": content,
        "content_type": ctype,
        "filename": name,
        "app": "kf",
        "created": time.time(),
    }


async def media_get(request: web.Request):
    state = request.app[common.STATE]
    media = state.media.get(request.query.get("media_id") or "")
    if media is None or media["app"] != request.get("app_name"):
        raise common.ApiError(40007, "invalid media_id")
    return web.Response(
        body=media["data"],
        content_type=media["content_type"],
        headers={"Content-Disposition": f'attachment; filename="{media["filename"]}"'},
    )


async def media_upload(request: web.Request) -> Dict[str, Any]:
    state = request.app[common.STATE]
    kind = request.query.get("type")
    if kind not in UPLOAD_TYPES:
        raise common.ApiError(40004, "invalid media type")
    try:
        form = await request.post()
    except Exception:
        raise common.ApiError(41005, "media data missing") from None
    field = form.get("media")
    if field is None or not hasattr(field, "file"):
        raise common.ApiError(41005, "media data missing")
    content = field.file.read(MAX_UPLOAD_BYTES + 1)
    if not content:
        raise common.ApiError(44001, "empty media data")
    if len(content) > MAX_UPLOAD_BYTES:
        raise common.ApiError(40006, "invalid file size")
    media_id = state.new_id("appmedia")
    state.media[media_id] = {
        "data": content,
        "content_type": field.content_type or "",
        "filename": field.filename or kind,
        "app": request.get("app_name"),
        "created": time.time(),
        "type": kind,
    }
    return {"type": kind, "media_id": media_id, "created_at": str(int(time.time()))}


def check_app_media(state, body: Dict[str, Any]) -> None:
    """message/send of voice / image / file needs the app's own uploaded media_id."""
    msgtype = body.get("msgtype")
    media_id = (body.get(msgtype) or {}).get("media_id")
    media = state.media.get(media_id or "")
    if media is None or media["app"] != "app":
        raise common.ApiError(40007, "invalid media_id")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/cgi-bin/media/get", media_get)
    app.router.add_post("/cgi-bin/media/upload", media_upload)

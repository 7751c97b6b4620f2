"""Temporary media (素材): `media/get` downloads what a guest sent (a 微信客服 media_id, with the
kf app's token), `media/upload` puts a file up for the self-built app to send (e.g. a guest's
voice message passed to an advisor). Both answer JSON errcodes on failure; `get` answers the
bytes on success. Sizes are capped (a guest cannot make us hold a huge file in memory).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Optional

import aiohttp

from bot.wecom.errors import TOKEN_ERRCODES, TransportError, WeComAPIError

GET_PATH = "/cgi-bin/media/get"
UPLOAD_PATH = "/cgi-bin/media/upload"


@dataclass(frozen=True)
class Media:
    data: bytes
    content_type: str
    filename: Optional[str] = None


class MediaTooLarge(WeComAPIError):
    def __init__(self, limit: int):
        super().__init__(-4, f"media over {limit} bytes", GET_PATH)


def _filename(disposition: str) -> Optional[str]:
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            return value.strip('"')
    return None


async def download(client, media_id: str, *, max_bytes: int) -> Media:
    """The bytes of `media_id` (refreshing the token once on 40014/42001/40001)."""
    if client is None or client.tokens is None:
        raise WeComAPIError(-3, "no secret configured for this app", GET_PATH)
    for attempt in (0, 1):
        token = await client.tokens.get()
        try:
            async with client.http().get(
                client.url(GET_PATH), params={"access_token": token, "media_id": media_id}
            ) as resp:
                if resp.status >= 500:
                    raise TransportError(f"HTTP {resp.status}", GET_PATH)
                if resp.status >= 400:
                    raise WeComAPIError(-resp.status, f"HTTP {resp.status}", GET_PATH)
                ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise MediaTooLarge(max_bytes)
                data = await resp.content.read(max_bytes + 1)
                disposition = resp.headers.get("Content-Disposition") or ""
        except asyncio.TimeoutError as exc:
            raise TransportError("timeout", GET_PATH, exc) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}", GET_PATH, exc) from None
        if len(data) > max_bytes:
            raise MediaTooLarge(max_bytes)
        if ctype in ("application/json", "text/plain"):
            try:
                answer = json.loads(data.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise TransportError(
                    "media/get answered neither media nor JSON", GET_PATH
                ) from None
            errcode = int(answer.get("errcode") or 0)
            if errcode in TOKEN_ERRCODES and attempt == 0:
                await client.tokens.invalidate(token)
                continue
            raise WeComAPIError(errcode or -2, str(answer.get("errmsg", "")), GET_PATH)
        if not data:
            raise WeComAPIError(-2, "empty media", GET_PATH)
        return Media(data, ctype or "application/octet-stream", _filename(disposition))
    raise AssertionError("unreachable")


async def upload(client, kind: str, data: bytes, filename: str, content_type: str) -> str:
    """media/upload?type=KIND (image | voice | video | file): the app's media_id (3 days)."""
    if client is None or client.tokens is None:
        raise WeComAPIError(-3, "no secret configured for this app", UPLOAD_PATH)
    for attempt in (0, 1):
        token = await client.tokens.get()
        form = aiohttp.FormData()
        form.add_field("media", data, filename=filename, content_type=content_type)
        try:
            async with client.http().post(
                client.url(UPLOAD_PATH), data=form, params={"access_token": token, "type": kind}
            ) as resp:
                if resp.status >= 500:
                    raise TransportError(f"HTTP {resp.status}", UPLOAD_PATH)
                answer = await resp.json(content_type=None)
        except asyncio.TimeoutError as exc:
            raise TransportError("timeout", UPLOAD_PATH, exc) from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}", UPLOAD_PATH) from None
        errcode = int(answer.get("errcode") or 0)
        if errcode in TOKEN_ERRCODES and attempt == 0:
            await client.tokens.invalidate(token)
            continue
        if errcode or not answer.get("media_id"):
            raise WeComAPIError(
                errcode or -2, str(answer.get("errmsg", "no media_id")), UPLOAD_PATH
            )
        return str(answer["media_id"])
    raise AssertionError("unreachable")

"""Text helpers shared by the surfaces: WeCom's byte limits, and the Chinese answers to input the
bot cannot read (images, voice, files...), which must never be dropped silently."""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional

# WeCom limits, in UTF-8 bytes (a Chinese character is 3 bytes).
KF_TEXT_MAX_BYTES = 2048  # kf/send_msg text.content
APP_TEXT_MAX_BYTES = 2048  # message/send text.content ("超过将截断")
AIBOT_MARKDOWN_MAX_BYTES = 20480  # aibot response_url markdown.content
ROBOT_TEXT_MAX_BYTES = 2048  # webhook/send text.content
MENU_HEAD_MAX_BYTES = 1024  # msgmenu head_content / tail_content
MENU_ITEM_MAX_BYTES = 128  # msgmenu click.content (button title)
MENU_ID_MAX_BYTES = 64  # msgmenu click.id
MENU_MAX_ITEMS = 10
TEXTCARD_TITLE_MAX_BYTES = 128
TEXTCARD_DESC_MAX_BYTES = 512

# Inbound: longer guest texts are cut before NLU (the rest is kept in the inbox payload).
MAX_INBOUND_CHARS = 2000

REPLIES = {
    "empty": "您好，我在呢～请问有什么可以帮您？",
    "image": "收到您的图片啦📷 我暂时还看不懂图片，麻烦用文字简单描述一下您的需求；需要顾问查看的话，回复“转人工”即可。",
    "voice": "收到您的语音🎤 我暂时还听不了语音，麻烦打字告诉我；也可以回复“转人工”，由顾问为您服务。",
    "video": "收到您的视频啦🎬 我暂时还看不了视频，麻烦用文字描述一下您的需求；需要顾问查看的话，回复“转人工”即可。",
    "file": "收到您的文件📎 已为您记录。需要顾问查看的话，回复“转人工”即可。",
    "location": "收到您分享的位置📍{place}。想查询路线或附近的交通，请告诉我您要去哪里～",
    "link": "收到您分享的链接🔗 我暂时还打不开链接，麻烦用文字告诉我您想了解什么～",
    "other": "收到啦～我目前只能处理文字消息，请用文字告诉我您的需求，或回复“转人工”。",
    "welcome": "您好，欢迎咨询！我是您的专属礼宾助手🛎 可以帮您查询行程、天气与酒店设施，预订接送机、SPA等增值服务。请问有什么可以帮您？",
    "busy": "抱歉，系统有点忙，刚才的消息没能处理好。请稍后再试，或回复“转人工”由顾问为您服务。",
    "app_unhandled": "消息已收到。当前没有可处理这条消息的功能，如需帮助请联系管理员。",
}

MEDIA_KINDS = {
    "image": "image",
    "voice": "voice",
    "video": "video",
    "file": "file",
    "location": "location",
    "link": "link",
    "miniprogram": "link",
    "business_card": "other",
    "channels_shop_product": "link",
    "channels_shop_order": "other",
    "merged_msg": "other",
    "channels": "link",
    "meeting": "other",
    "schedule": "other",
    "note": "other",
    "mixed": "image",
    "shortvideo": "video",
    "emotion": "image",
}


def reply_for_kind(kind: str, payload: Optional[Dict[str, Any]] = None) -> str:
    key = MEDIA_KINDS.get(kind, "other")
    text = REPLIES[key]
    if key == "location":
        place = ""
        if payload:
            place = payload.get("location_name") or payload.get("location_address") or ""
        text = text.format(place=f"：{place}" if place else "")
    return text


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def truncate_utf8(text: str, max_bytes: int, ellipsis: str = "…") -> str:
    if utf8_len(text) <= max_bytes:
        return text
    budget = max_bytes - utf8_len(ellipsis)
    raw = text.encode("utf-8")[: max(0, budget)]
    return raw.decode("utf-8", errors="ignore") + ellipsis


_BREAKS = ("\n\n", "\n", "。", "！", "？", "；", "!", "?", ";", "，", ",", " ")


def split_utf8(text: str, max_bytes: int) -> List[str]:
    """Split `text` into parts of at most `max_bytes` UTF-8 bytes, at the nicest break available
    (paragraph, line, sentence end, comma, space), never inside a character."""
    text = text or ""
    parts: List[str] = []
    while utf8_len(text) > max_bytes:
        head = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
        cut = -1
        for mark in _BREAKS:
            pos = head.rfind(mark)
            if pos >= len(head) // 3:  # a break too early would leave tiny parts
                cut = pos + len(mark)
                break
        if cut <= 0:
            cut = len(head)
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip("\n")
    if text.strip() or not parts:
        parts.append(text)
    return [p for p in parts if p.strip()] or [""]


def merge_texts(texts: Iterable[str], max_bytes: int, sep: str = "\n\n") -> List[str]:
    """Join consecutive texts while they fit: fewer messages (the kf budget is 5 per 48 h)."""
    out: List[str] = []
    for text in texts:
        for part in split_utf8(text, max_bytes):
            if out and utf8_len(out[-1] + sep + part) <= max_bytes:
                out[-1] = out[-1] + sep + part
            else:
                out.append(part)
    return out


_MENTION = re.compile(r"^\s*(@\S+\s*)+")


def strip_mentions(text: str, bot_name: Optional[str] = None) -> tuple:
    """'@礼宾助手 明天天气' -> ('明天天气', True). Mentions of the bot anywhere are removed."""
    text = text or ""
    mentioned = False
    if bot_name and f"@{bot_name}" in text:
        mentioned = True
        text = text.replace(f"@{bot_name}", " ")
    stripped = _MENTION.sub("", text)
    if stripped != text:
        mentioned = True
    return stripped.strip(), mentioned


def clip_inbound(text: str) -> tuple:
    """-> (text for NLU, truncated?)"""
    text = (text or "").strip()
    if len(text) > MAX_INBOUND_CHARS:
        return text[:MAX_INBOUND_CHARS], True
    return text, False


def button_lines(buttons: Iterable[Dict[str, Any]]) -> str:
    """Buttons as text, for surfaces without menus: the guest can answer with the title."""
    lines = []
    for i, button in enumerate(buttons, 1):
        title = str(button.get("title") or button.get("payload") or "").strip()
        if title:
            lines.append(f"{i}. {title}")
    return "\n".join(lines)

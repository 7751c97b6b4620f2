"""Advisors' command grammar in the WeCom app (pure parsing; `PagingService.handle_command` acts).

    接单 N            acknowledge case N (stops the escalation)
    接管 N | 接管 客人  take over the conversation with the guest (the bot goes silent)
    回复 N 内容        send the guest a message through the bot's channel
    备注 N 内容        add a note to the case
    解决 N 说明        resolve it; the guest is told the 说明 and asked for a rating
    确认 N [说明]      an order: the supplier confirmed it (the guest is told)
    婉拒 N 原因        an order: the supplier cannot do it (order cancelled, the guest is told why)
    补偿 N 内容        a complaint: record what was offered (points, voucher, refund...)
    交还 N            hand the conversation back to the bot
    队列              your open cases and unassigned ones, with deadlines
    帮助              this help

Forgiving about how people type on phones: full-width digits and letters (１２), `#12`, `12号`,
no space (`接单12`), traditional characters (接單, 備註, 解決, 交還, 隊列, 幫助), a leading `/`,
extra spaces, Chinese or Western punctuation between the number and the text. The case number
may be left out of 接单 / 接管 / 交还 when the advisor holds exactly one matching case.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Optional

ACK, TAKEOVER, REPLY, NOTE, RESOLVE, HANDBACK, QUEUE, HELP = (
    "ack",
    "takeover",
    "reply",
    "note",
    "resolve",
    "handback",
    "queue",
    "help",
)
CONFIRM, DECLINE, COMPENSATE = "confirm", "decline", "compensate"

# Longest aliases first (the matcher tries them in this order).
ALIASES = {
    ACK: ("接单", "接單", "认领", "認領", "ack"),
    TAKEOVER: ("接管", "takeover"),
    REPLY: ("回复", "回覆", "回復", "reply"),
    NOTE: ("备注", "備註", "備注", "记录", "記錄", "note"),
    RESOLVE: ("已解决", "已解決", "解决", "解決", "结案", "結案", "resolve"),
    HANDBACK: ("交还", "交還", "归还", "歸還", "handback"),
    QUEUE: ("我的队列", "队列", "隊列", "列表", "queue"),
    HELP: ("帮助", "幫助", "help", "菜单", "菜單", "?", "？"),
    CONFIRM: ("确认", "確認", "供应商确认", "供應商確認", "confirm"),
    DECLINE: (
        "婉拒",
        "供应商拒绝",
        "供應商拒絕",
        "无法安排",
        "無法安排",
        "拒单",
        "拒單",
        "decline",
    ),
    COMPENSATE: ("补偿", "補償", "compensate"),
}
NEEDS_TEXT = {
    NOTE: "备注内容",
    RESOLVE: "处理说明",
    REPLY: "回复内容",
    DECLINE: "原因（客人会看到）",
    COMPENSATE: "补偿内容",
}
NEEDS_CASE = (NOTE, RESOLVE, REPLY, CONFIRM, DECLINE, COMPENSATE)
MAX_CASE_ID = 2_000_000_000

HELP_TEXT = (
    "礼宾值班指令（N 为卡片上的编号）：\n"
    "接单 N —— 接单，停止升级\n"
    "接管 N（或 接管 客人姓名）—— 直接与客人对话，机器人暂停\n"
    "回复 N 内容 —— 通过机器人渠道回复客人\n"
    "备注 N 内容 —— 给该单添加备注\n"
    "解决 N 说明 —— 结案，客人会收到说明并被邀请评分\n"
    "交还 N —— 把对话交还机器人\n"
    "确认 N [说明] —— 订单：供应商已确认，客人会收到确认\n"
    "婉拒 N 原因 —— 订单：供应商无法安排，订单取消，客人会收到原因\n"
    "补偿 N 内容 —— 投诉：记录给客人的补偿（如 500积分+下次8折）\n"
    "队列 —— 查看我的待办和未接的单\n"
    "帮助 —— 查看本说明"
)


@dataclass(frozen=True)
class Command:
    verb: str
    case_id: Optional[int] = None
    guest: Optional[str] = None  # 接管 by guest name (or sender id)
    text: Optional[str] = None


class CommandError(ValueError):
    """The message is not a command we understand; `reply` says so, in Chinese, with a hint."""

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply


def _fold(ch: str) -> str:
    """Full-width ASCII forms and the ideographic space to their ASCII twin, one char for one."""
    code = ord(ch)
    if 0xFF01 <= code <= 0xFF5E:
        return chr(code - 0xFEE0)
    if ch == "\u3000" or ch.isspace():
        return " "
    return ch


def normalize(text: str) -> str:
    """What the parser matches on: full-width folded, spaces collapsed, a leading slash or
    @mention dropped (the free text of a note keeps the advisor's own punctuation)."""
    folded = "".join(_fold(c) for c in unicodedata.normalize("NFC", text or ""))
    folded = re.sub(r" +", " ", folded).strip()
    folded = re.sub(r"^@\S+ +", "", folded)
    return folded.lstrip("/").strip()


_CASE_RE = re.compile(
    r"(?:#|no\.? *|编号 *|單號 *|单号 *)?(\d+) *(?:号|號)?(?=$|[ ,，:：;；.。、!！])", re.IGNORECASE
)
_SEPARATORS = " ,，:：;；.。、-—"


def _lead(folded: str) -> int:
    """Where the command starts: after a leading @mention and/or slash."""
    match = re.match(r"^(?:@\S+ +)?/?\s*", folded)
    return match.end() if match else 0


def _skip(folded: str, pos: int) -> int:
    while pos < len(folded) and folded[pos] in _SEPARATORS:
        pos += 1
    return pos


def _match_verb(folded: str, pos: int) -> tuple[Optional[str], int]:
    lowered = folded.lower()
    candidates = sorted(
        ((alias, verb) for verb, aliases in ALIASES.items() for alias in aliases),
        key=lambda pair: -len(pair[0]),
    )
    for alias, verb in candidates:
        if lowered.startswith(alias.lower(), pos):
            end = pos + len(alias)
            # a Latin alias must end at a word boundary ("acknowledge" is not "ack")
            if alias.isascii() and alias.isalpha() and folded[end : end + 1].isalpha():
                continue
            return verb, end
    return None, pos


def parse(text: str) -> Command:
    """Parse one app message; raises `CommandError` (with the reply to send) when it is not one."""
    original = unicodedata.normalize("NFC", text or "")
    original = "".join(c for c in original if c.isprintable() or c.isspace())
    folded = "".join(_fold(c) for c in original)  # same length: positions map 1:1
    pos = _lead(folded)
    if not folded[pos:].strip():
        raise CommandError("收到空消息。发送“帮助”查看可用指令。")
    verb, pos = _match_verb(folded, pos)
    if verb is None:
        clean = normalize(original)
        shown = clean if len(clean) <= 20 else clean[:20] + "…"
        raise CommandError(f"没看懂“{shown}”。发送“帮助”查看指令，例如：接单 12")
    if verb in (HELP, QUEUE):
        return Command(verb)
    pos = _skip(folded, pos)
    case_id = None
    match = _CASE_RE.match(folded, pos)
    if match:
        number = int(match.group(1))
        if number <= 0 or number > MAX_CASE_ID:
            raise CommandError(f"编号 {match.group(1)} 不对，请看卡片上的编号（例如：接单 12）。")
        case_id = number
        pos = _skip(folded, match.end())
    remainder = re.sub(r"\s+", " ", original[pos:]).strip(_SEPARATORS + " \u3000")
    if verb == TAKEOVER and case_id is None:
        guest = remainder or None
        if guest and len(guest) > 64:
            raise CommandError("客人姓名太长了。请用“接管 N”（N 为卡片上的编号）。")
        return Command(verb, guest=guest)
    if verb in (ACK, HANDBACK):
        if case_id is None and remainder:
            raise CommandError(f"“{remainder[:20]}”不是编号。请写：{ALIASES[verb][0]} 12")
        return Command(verb, case_id=case_id)
    if verb == TAKEOVER:
        return Command(verb, case_id=case_id)
    if verb == CONFIRM:
        if case_id is None:
            raise CommandError("请写上编号，例如：确认 12（可加说明：确认 12 司机王师傅 139xxxx）")
        if len(remainder) > 500:
            raise CommandError("说明太长了（最多 500 字）。")
        return Command(verb, case_id=case_id, text=remainder or None)
    # note / resolve / reply: a case number and some text
    example = f"{ALIASES[verb][0]} 12 " + {
        RESOLVE: "已更换房间并致歉",
        DECLINE: "当天船已订满",
        COMPENSATE: "500积分+下次8折",
    }.get(verb, "已联系客人")
    if case_id is None:
        raise CommandError(f"请写上编号和{NEEDS_TEXT[verb]}，例如：{example}")
    if not remainder:
        raise CommandError(f"请写上{NEEDS_TEXT[verb]}，例如：{example}")
    if len(remainder) > 1000:
        raise CommandError(f"{NEEDS_TEXT[verb]}太长了（最多 1000 字）。")
    return Command(verb, case_id=case_id, text=remainder)

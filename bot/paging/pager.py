"""What the pages and notices say, and the small interface they are sent through.

Content only (pure functions of the clock, the guest card and `now`):
- `page_card`: the WeCom app `textcard` an advisor / supervisor gets: guest name, tier, tags,
  the last messages, what is asked, the deadline, how to answer, a link. WeCom limits: title
  128 bytes, description 512 bytes (a small HTML subset: div.gray / div.normal / div.highlight).
- `group_text`: the emergency group robot post for major incidents (20 posts/min per robot).
- `guest_text`: what the guest is told (ack, slip, takeover, hand-back, resolved + rating ask).

`Messenger` is what the worker and the command handler send through; `bot.paging.wecom_messenger`
adapts the project's WeCom client and the Rasa API to it, tests use `RecordingMessenger`.
"""

from __future__ import annotations

import datetime as dt
import html
from urllib.parse import urlencode, urlsplit, urlunsplit
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

from bot.paging.clocks import local_time_text
from bot.paging.policy import Policy, format_duration

TITLE_MAX_BYTES = 128
DESCRIPTION_MAX_BYTES = 512
GROUP_TEXT_MAX_BYTES = 2048
# Preference categories whose values never go into a WeCom message (health data, PIPL).
SENSITIVE_CATEGORIES = frozenset({"allergy", "health"})


class SendFailed(Exception):
    """A message could not be delivered now (the step is retried later)."""


class Messenger(Protocol):
    async def app_textcard(
        self, userid: str, title: str, description: str, url: str, btntxt: str, *, dedupe_key: str
    ) -> None: ...

    async def app_text(
        self, userid: str, text: str, *, dedupe_key: Optional[str] = None
    ) -> None: ...

    async def group_post(
        self, webhook: str, text: str, mention: Sequence[str], *, dedupe_key: str
    ) -> None: ...

    async def guest_text(self, sender_id: str, text: str, *, dedupe_key: str) -> None: ...


@dataclass
class RecordingMessenger:
    """Keeps every message in `sent` (tests, the benchmark); `fail_next` makes sends fail."""

    sent: list = field(default_factory=list)
    fail_next: int = 0
    fail_targets: set = field(default_factory=set)  # e.g. {"app:advisor_li"} always fails

    def _record(self, kind: str, to: str, **payload) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise SendFailed(f"simulated failure sending {kind} to {to}")
        if f"{kind}:{to}" in self.fail_targets:
            raise SendFailed(f"simulated failure sending {kind} to {to}")
        self.sent.append({"kind": kind, "to": to, **payload})

    async def app_textcard(self, userid, title, description, url, btntxt, *, dedupe_key):
        self._record(
            "app",
            userid,
            msgtype="textcard",
            title=title,
            description=description,
            url=url,
            btntxt=btntxt,
            dedupe_key=dedupe_key,
        )

    async def app_text(self, userid, text, *, dedupe_key=None):
        self._record("app", userid, msgtype="text", text=text, dedupe_key=dedupe_key)

    async def group_post(self, webhook, text, mention, *, dedupe_key):
        self._record("group", webhook, text=text, mention=list(mention), dedupe_key=dedupe_key)

    async def guest_text(self, sender_id, text, *, dedupe_key):
        self._record("guest", sender_id, text=text, dedupe_key=dedupe_key)

    def to(self, kind: str, to: str | None = None) -> list:
        return [m for m in self.sent if m["kind"] == kind and (to is None or m["to"] == to)]


@dataclass(frozen=True)
class GuestCard:
    """What an advisor needs to know about the guest, without health data."""

    sender_id: str
    name: str
    tier: str = "普通"
    tags: tuple = ()
    has_sensitive_notes: bool = False
    last_messages: tuple = ()
    channel: str = ""  # kf | group | app | rest ... (how the guest talks to us)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def clip(text: str, max_bytes: int, ellipsis: str = "…") -> str:
    """Cut `text` to at most `max_bytes` UTF-8 bytes, never inside a character."""
    if _utf8_len(text) <= max_bytes:
        return text
    budget = max_bytes - _utf8_len(ellipsis)
    out = []
    used = 0
    for ch in text:
        size = _utf8_len(ch)
        if used + size > budget:
            break
        out.append(ch)
        used += size
    return "".join(out) + ellipsis


# What each kind of step is called on a card.
STEP_TITLES = {
    "page": "新{label}",
    "repage": "提醒：{label}待接单",
    "escalate": "超时未接单：{label}",
    "escalate_resolve": "超时未解决：{label}",
    "escalate_supervisor": "超时未接入：{label}",
    "update_reminder": "请更新进展：{label}",
    "reroute": "转派给您：{label}",
}


def step_title(step: str, label: str, *, escalation: bool) -> str:
    template = STEP_TITLES.get(step)
    if template is None:
        template = "升级：{label}" if escalation else "{label}"
    return template.format(label=label)


@dataclass(frozen=True)
class CardFacts:
    """Everything a page card shows about the case, computed by the worker."""

    case_id: int
    label: str
    step: str
    summary: str
    ack_due_at: dt.datetime
    resolve_due_at: Optional[dt.datetime]
    acknowledged: bool
    holder_name: Optional[str]  # who has (or was paged for) it
    escalation: bool  # this card goes to someone above the advisor
    late_by: Optional[dt.timedelta] = None
    nobody_on_duty: bool = False
    nature: Optional[str] = None  # a complaint's nature as advisors read it (服务失误 …)
    remedy: Optional[str] = None  # what the policy offers for that nature
    offered: Optional[str] = None  # what the advisor recorded as offered on this case
    past: tuple = ()  # earlier complaints of the guest, as short texts
    dedicated: Optional[str] = None  # the advisor who handled the last one
    media: str = ""  # what the guest sent with it, e.g. "照片 2 张"
    step_id: Optional[int] = None  # the SLA step this card is sent for (named in its link)


def page_card(
    policy: Policy, facts: CardFacts, guest: GuestCard, now: dt.datetime, *, viewer: str, links=None
) -> dict:
    """The textcard: {title, description, url, btntxt}, within WeCom's byte limits."""
    flag = "·曾投诉" if facts.past else ""
    title = clip(
        f"【{step_title(facts.step, facts.label, escalation=facts.escalation)}】"
        f"#{facts.case_id} {guest.name}·{guest.tier}{flag}",
        TITLE_MAX_BYTES,
    )
    esc = html.escape
    ack_by = local_time_text(policy, facts.ack_due_at, now)
    if facts.step in ("escalate_resolve", "update_reminder") and facts.resolve_due_at:
        deadline = f"解决时限：{local_time_text(policy, facts.resolve_due_at, now)} 前"
    elif facts.acknowledged:
        deadline = (
            f"解决时限：{local_time_text(policy, facts.resolve_due_at, now)} 前"
            if facts.resolve_due_at
            else "请持续向客人更新进展"
        )
    else:
        deadline = f"接单时限：{ack_by} 前"
    if facts.escalation and not facts.acknowledged:
        who = facts.holder_name or "值班顾问"
        action = f"{who}未在 {ack_by} 前接单。回复“接单 {facts.case_id}”或“接管 {facts.case_id}”"
    elif facts.escalation:
        action = f"处理人：{facts.holder_name or '—'}。回复“备注 {facts.case_id} 内容”跟进"
    elif facts.acknowledged:
        action = f"回复“解决 {facts.case_id} 说明”结案"
    else:
        action = f"回复“接单 {facts.case_id}”接单，“接管 {facts.case_id}”直接与客人对话"
    tags = "、".join(guest.tags[:8]) or "—"
    if guest.has_sensitive_notes:
        tags += "（另有健康/过敏备注，见详情）"

    head = [
        f'<div class="gray">{esc(now.astimezone(policy.tz).strftime("%m-%d %H:%M"))}'
        f'{" · 无人值班，转您处理" if facts.nobody_on_duty else ""}</div>'
    ]
    if facts.late_by is not None:
        head.append(
            f'<div class="highlight">延迟发送（晚了{esc(format_duration(facts.late_by))}）</div>'
        )
    body = [
        f'<div class="normal">客人：{esc(guest.name)}（{esc(guest.tier)}）</div>',
        f'<div class="normal">诉求：{esc(facts.summary)}</div>',
    ]
    if facts.media:  # short and easily missed: right under what the guest asks
        body.append(f'<div class="highlight">客人附件：{esc(facts.media)}（点“详情”查看）</div>')
    if facts.past:
        who = f"，专属顾问 {facts.dedicated}" if facts.dedicated else ""
        body.append(
            f'<div class="highlight">曾投诉：{esc("；".join(facts.past))}{esc(who)}，'
            f'请优先跟进</div>'
        )
    if facts.nature:
        policy_line = f"性质：{facts.nature}"
        if facts.remedy:
            policy_line += f"。政策：{facts.remedy}"
        body.append(f'<div class="normal">{esc(policy_line)}</div>')
        offered = (
            f"已记录补偿：{facts.offered}"
            if facts.offered
            else f"记录所给补偿：回复“补偿 {facts.case_id} 内容”"
        )
        body.append(f'<div class="normal">{esc(offered)}</div>')
    body.append(f'<div class="normal">标签：{esc(tags)}</div>')
    tail = [
        f'<div class="highlight">{esc(deadline)}</div>',
        f'<div class="normal">{esc(action)}</div>',
    ]
    fixed = "".join(head + tail)
    description = fixed
    # Fill what is left, most important first, clipping a line that does not fit.
    budget = DESCRIPTION_MAX_BYTES - _utf8_len(fixed)
    middle = []
    lines = body + [
        f'<div class="gray">客人：“{esc(msg)}”</div>' for msg in guest.last_messages[-3:]
    ]
    for line in lines:
        if _utf8_len(line) <= budget:
            middle.append(line)
            budget -= _utf8_len(line)
        elif budget > 40:
            inner_budget = budget - len('<div class="normal"></div>'.encode())
            inner = line.split(">", 1)[1].rsplit("</div>", 1)[0]
            cls = line.split('"')[1]
            middle.append(f'<div class="{cls}">{clip(inner, inner_budget)}</div>')
            budget = 0
    description = "".join(head + middle + tail)
    if _utf8_len(description) > DESCRIPTION_MAX_BYTES:  # cannot happen with sane inputs; be safe
        description = clip(description, DESCRIPTION_MAX_BYTES)
    url = policy.link_for(facts.case_id, viewer, links)
    if facts.step_id is not None:
        # Two steps may otherwise produce the same card (same minute, same facts); pages go out
        # with WeCom's duplicate check (bot.paging.channels), which would drop the second.
        url = _with_query(url, step=facts.step_id)
    return {"title": title, "description": description, "url": url, "btntxt": "详情"}


def _with_query(url: str, **params) -> str:
    parts = urlsplit(url)
    extra = urlencode(params)
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def group_text(
    policy: Policy, facts: CardFacts, guest: GuestCard, now: dt.datetime, *, group: str, links=None
) -> str:
    ack_by = local_time_text(policy, facts.ack_due_at, now)
    if facts.step == "page":
        lead = f"【{facts.label} #{facts.case_id}】请应急小组立即响应，{ack_by} 前启动处理。"
    else:
        lead = (
            f"【{facts.label} #{facts.case_id} 升级】{ack_by} 前仍未启动处理"
            if not facts.acknowledged
            else f"【{facts.label} #{facts.case_id} 升级】"
        )
    lines = [
        lead,
        f"客人：{guest.name}（{guest.tier}）",
        f"情况：{facts.summary}",
        f"值班：{facts.holder_name or '无人值班'}",
        f"接单：在企业微信应用中回复“接单 {facts.case_id}”",
        policy.link_for(facts.case_id, f"group:{group}", links),
    ]
    if facts.late_by is not None:
        lines.insert(1, f"（延迟发送，晚了{format_duration(facts.late_by)}）")
    return clip("\n".join(lines), GROUP_TEXT_MAX_BYTES)


def guest_text(
    kind: str,
    policy: Policy,
    *,
    label: str,
    case_id: int,
    now: dt.datetime,
    advisor_name: Optional[str] = None,
    resolve_by: Optional[dt.datetime] = None,
    ack_by: Optional[dt.datetime] = None,
    resolution: Optional[str] = None,
    escalated_to: str = "主管",
    acknowledged: bool = False,
    ask_rating: bool = True,
) -> str:
    """The sentence the guest gets for a notice of `kind`."""
    who = advisor_name or "顾问"
    if kind == "guest_ack":
        text = f"{who}已接手您的{label}（编号 {case_id}）"
        if resolve_by is not None:
            text += f"，会在 {local_time_text(policy, resolve_by, now)} 前给您处理方案。"
        else:
            text += "，会尽快与您联系。"
        return text
    if kind == "guest_takeover":
        return f"您好，我是{who}，接下来由我直接为您服务（编号 {case_id}）。"
    if kind == "guest_handback":
        return f"{who}的人工服务已结束，礼宾助手继续为您服务；需要人工时随时说“转人工”。"
    if kind == "guest_resolved":
        text = f"您的{label}（编号 {case_id}）已处理完毕"
        text += f"：{resolution}。" if resolution else "。"
        if ask_rating:
            text += "请为本次服务打分：直接回复 1-5 的数字（5 分最满意）。"
        return text
    if kind == "guest_slip_ack":
        if acknowledged:
            return f"抱歉让您久等了，{who}正在处理您的{label}，会尽快给您答复。"
        return (
            f"抱歉让您久等了。您的{label}（编号 {case_id}）还没有顾问接手，"
            f"我们已升级给{escalated_to}，会尽快联系您。"
        )
    if kind == "guest_slip_resolve":
        return (
            f"抱歉，您的{label}（编号 {case_id}）处理超出了承诺的时间，"
            f"我们已升级给{escalated_to}跟进，会尽快给您答复。"
        )
    if kind == "guest_update":
        if acknowledged:
            return (
                f"关于您的{label}（编号 {case_id}），{who}仍在持续跟进处理，"
                "有新进展会第一时间告诉您。有任何情况可以直接在这里告诉我们。"
            )
        return (
            f"关于您的{label}（编号 {case_id}），我们仍在全力协调处理，"
            "有新进展会第一时间告诉您。有任何情况可以直接在这里告诉我们。"
        )
    if kind == "guest_rating_thanks":
        return "感谢您的评分！您的反馈我们会认真对待。"
    raise ValueError(f"unknown guest notice {kind!r}")

"""The case page the textcards link to, `GET /webhooks/paging/cases/<N>?sig=…` (served by
connectors/paging.py on the Rasa server): signed over case, viewer and expiry with
PAGING_LINK_SECRET (bot.paging.links), so a case number alone opens nothing, and a link works only
for the advisor it was sent to while they are rostered for the case's property. It shows the case,
its deadlines, every step and note, and the commands to answer it; phone numbers and health notes
are not on it; each view is audited under the viewer's userid. Also the guest's photos / voice
messages of the case (`.../media/<M>`), with the same checks. Web-framework-free: a `Page` is
status, body and headers.
"""

from __future__ import annotations

import asyncio
import html
import logging
from dataclasses import dataclass, field
from typing import Dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, status: int) -> "Page":
        return cls(status, text.encode("utf-8"))


def render_case(
    policy, clock, steps, notes, guest_name: str, tier: str, now, media: tuple = (), sig: str = ""
) -> str:
    """The case page (plain HTML, readable in WeCom's in-app browser)."""
    from bot.paging.clocks import local_time_text, outcome

    esc = html.escape
    try:
        label = policy.sla_class(clock.sla_class, clock.property_id).label
    except KeyError:
        label = clock.sla_class

    def when(moment):
        return local_time_text(policy, moment, now) if moment else "—"

    people = policy.people()

    def name(userid):
        return people[userid].name if userid in people else (userid or "—")

    words = {"met": "按时", "missed": "超时", "pending": "进行中", "none": "—"}
    state = {
        "running": "待接单",
        "acknowledged": "处理中",
        "resolved": "已结案",
        "cancelled": "已取消",
    }.get(clock.state, clock.state)
    rows = "".join(
        f"<tr><td>{esc(st.step)}</td><td>{esc(when(st.due_at))}</td><td>{esc(st.status)}"
        f"{' (延迟)' if st.late else ''}</td><td>{esc(', '.join(st.recipients))}</td></tr>"
        for st in steps
    )
    note_rows = (
        "".join(
            f"<li>{esc(when(n.created_at))} {esc(name(n.author))}（{esc(n.kind)}）："
            f"{esc(n.text)}</li>"
            for n in notes
        )
        or "<li>无</li>"
    )
    words_of = {"image": "照片", "voice": "语音"}
    media_rows = (
        "".join(
            f'<li><a href="{esc(f"/webhooks/paging/cases/{clock.id}/media/{media_id}?sig={sig}")}">'
            f'{esc(words_of.get(kind, kind))} {n}</a></li>'
            for n, (media_id, kind) in enumerate(media, 1)
        )
        or "<li>无</li>"
    )
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>#{clock.id} {esc(label)}</title>
<style>body{{font-family:sans-serif;margin:1em;line-height:1.5}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}}.k{{color:#666}}</style></head><body>
<h2>#{clock.id} {esc(label)} · {esc(state)}</h2>
<p><span class="k">客人</span> {esc(guest_name)}（{esc(tier)}）<br>
<span class="k">诉求</span> {esc(clock.summary or '—')}<br>
<span class="k">接单时限</span> {esc(when(clock.ack_due_at))}（{words[outcome(clock.ack_due_at, clock.acknowledged_at, now)]}）
<span class="k">解决时限</span> {esc(when(clock.resolve_due_at))}（{words[outcome(clock.resolve_due_at, clock.resolved_at, now)]}）<br>
<span class="k">值班</span> {esc(name(clock.paged_userid))} <span class="k">处理人</span> {esc(name(clock.assignee_userid))}
<span class="k">接管</span> {esc(name(clock.takeover_userid)) if clock.takeover_userid and not clock.handed_back_at else '—'}<br>
<span class="k">处理说明</span> {esc(clock.resolution or '—')} <span class="k">评分</span> {clock.rating or '—'}</p>
<p>在企业微信应用中回复：接单 {clock.id} ｜ 接管 {clock.id} ｜ 备注 {clock.id} 内容 ｜ 解决 {clock.id} 说明 ｜ 交还 {clock.id}</p>
<h3>客人附件</h3><ul>{media_rows}</ul>
<h3>步骤</h3><table><tr><th>步骤</th><th>时间</th><th>状态</th><th>发给</th></tr>{rows}</table>
<h3>备注</h3><ul>{note_rows}</ul></body></html>"""


class CasePages:
    """`service`: a PagingService (built on first request when not given); `links`: CaseLinks."""

    def __init__(self, service=None, links=None) -> None:
        self.service = service
        self.links = links

    async def case_page(self, case_id: int, sig: str) -> Page:
        from bot.audit import staff_read_async

        opened = await self._open_case(case_id, sig)
        if isinstance(opened, Page):
            return opened
        service, clock, staff = opened

        def read():
            guest = service.crm.find_guest(clock.sender_id)
            media = (
                tuple(service.store.ticket_media(clock.subject_id))
                if clock.subject_type == "ticket"
                else ()
            )
            return (
                service.store.steps(case_id),
                service.store.notes(case_id),
                (guest.display_name or clock.sender_id) if guest else clock.sender_id,
                guest.tier if guest else "—",
                media,
            )

        try:  # no audit record, no page
            steps, notes, guest_name, tier, media = await staff_read_async(
                service.crm,
                staff,
                "case.view",
                clock.subject_type,
                clock.subject_id,
                read,
                detail={"case": case_id, "via": "case_link"},
            )
        except Exception as exc:
            log.error("case page %s unavailable: %s", case_id, exc)
            return Page.text("暂时无法打开", 503)
        page = render_case(
            service.policy,
            clock,
            steps,
            notes,
            guest_name,
            tier,
            service.clock(),
            media=media,
            sig=sig,
        )
        return Page(200, page.encode("utf-8"), "text/html; charset=utf-8")

    async def case_media(self, case_id: int, media_id: int, sig: str) -> Page:
        """A photo / voice message the guest sent with this case, for whoever the case link
        was signed for (same checks as the page), audited."""
        opened = await self._open_case(case_id, sig)
        if isinstance(opened, Page):
            return opened
        service, clock, staff = opened
        from bot.audit import staff_read_async
        from bot.guest_media import MediaFiles
        from bot.settings import get_settings

        def read():
            row = service.crm.guest_media(media_id)
            if row is None or clock.subject_type != "ticket" or row.ticket_id != clock.subject_id:
                return None
            return row, MediaFiles(get_settings().media_dir).path(row.path).read_bytes()

        try:
            found = await staff_read_async(
                service.crm,
                staff,
                "media.view",
                "ticket",
                clock.subject_id,
                read,
                detail={"case": case_id, "media": media_id},
            )
        except (OSError, ValueError) as exc:
            log.error("media %s of case %s unreadable: %s", media_id, case_id, exc)
            return Page.text("文件暂时无法打开", 404)
        except Exception as exc:
            log.error("media %s of case %s unavailable: %s", media_id, case_id, exc)
            return Page.text("暂时无法打开", 503)
        if found is None:
            return Page.text("没有这个附件", 404)
        row, data = found
        return Page(200, data, row.content_type, {"Cache-Control": "private, no-store"})

    async def _open_case(self, case_id: int, sig: str):
        """(service, clock, staff) when the signed link lets its viewer see the case, else the
        refusal response (forged/expired link, unknown case, viewer no longer rostered)."""
        from bot.access import StaffAccess
        from bot.audit import Staff
        from bot.paging.links import CaseLinks, LinkInvalid
        from bot.paging.store import ClockNotFound

        try:
            self.links = self.links or CaseLinks.from_settings()
            access = self.links.verify(case_id, sig)
        except LinkInvalid as exc:
            log.info("case page %s refused: %s", case_id, exc.reason)
            return Page.text("链接无效或已过期", 403)
        service = self.service
        if service is None:
            from bot.paging.runtime import build_service

            try:
                service = self.service = build_service()
            except Exception as exc:
                log.error("case page unavailable: %s", exc)
                return Page.text("暂时无法打开", 503)
        try:
            clock = await asyncio.to_thread(service.store.clock, case_id)
        except ClockNotFound:
            return Page.text("没有这个单", 404)
        viewer = access.viewer
        if viewer.startswith("group:"):
            group = service.policy.property(clock.property_id).emergency_group
            allowed = group is not None and viewer == f"group:{group.name}"
        else:
            allowed = StaffAccess(service.policy).allows(viewer, clock.property_id)
        if not allowed:  # rostered elsewhere since the link was sent, or another property
            log.info(
                "case page %s refused: %s not rostered for %s", case_id, viewer, clock.property_id
            )
            return Page.text("您无权查看这个单", 403)
        if service.crm is None:
            return Page.text("暂时无法打开", 503)
        return service, clock, Staff("advisor", viewer)

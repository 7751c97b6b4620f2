"""What advisors' commands do, and the guest-side hooks (rating, messages during a takeover).

`PagingService.handle_command(userid, text)` parses a WeCom app message (bot.paging.commands),
changes the case in the database (bot.paging.store: one transaction, row-locked), mirrors the
change onto the ticket / order / handoff (CRMStore), audits who did what and when, moves the
conversation (bot.paging.handoff), gets the guest's notice out at once (the notice is a step, so
the worker would deliver it anyway if this process died now) and returns the confirmation.

`on_app_message` is the command handler the Rasa server's composition root (`bot/wiring.py`) adds to the
WeCom channel's `bot.wecom.surfaces.app.AppCommandRouter`.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import os
import re
import unicodedata
from typing import Callable, Optional

from bot.access import StaffAccess
from bot.orders.supplier import SupplierDesk
from bot.paging import clocks as rules
from bot.paging.clocks import local_time_text
from bot.paging.commands import (
    ACK,
    COMPENSATE,
    CONFIRM,
    DECLINE,
    HANDBACK,
    HELP,
    HELP_TEXT,
    NOTE,
    QUEUE,
    REPLY,
    RESOLVE,
    TAKEOVER,
    Command,
    CommandError,
    parse,
)
from bot.paging.context import GuestContext
from bot.paging.handoff import HandoffController
from bot.paging.pager import Messenger, guest_text
from bot.paging.policy import Policy, format_duration
from bot.paging.store import ClockDTO, ClockNotFound, PagingStore
from bot.paging.worker import PagingWorker, utcnow
from bot.wecom.sender import SenderId

log = logging.getLogger(__name__)

STATE_WORDS = {rules.RESOLVED: "已结案", rules.CANCELLED: "已取消"}
# What acknowledging / resolving means for the CRM record of each subject. Acknowledging an
# order says nothing about the supplier: it stays "requested" until 确认 / 婉拒 (SupplierDesk).
ACK_STATUS = {"ticket": "acknowledged", "handoff": "active"}
RESOLVE_STATUS = {"ticket": "resolved", "order": "done", "handoff": "returned"}

# Which staff surface the current action came through ("advisor": the WeCom app, "console": the
# staff console): it names the actor in the audit log, and a console takeover leaves the 微信客服
# session with the API (state 1) so the advisor's replies from the console can still be sent.
_surface: contextvars.ContextVar[str] = contextvars.ContextVar("paging_surface", default="advisor")
VERBS = (ACK, TAKEOVER, NOTE, RESOLVE, HANDBACK, REPLY, CONFIRM, DECLINE)

_RATING_RE = re.compile(r"^\s*([1-5一二三四五])\s*(?:分|星|颗星|顆星)?\s*[!！。.~～👍]*\s*$")
_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5}


def parse_rating(text: str) -> Optional[int]:
    """'5', '５', '5分', '五星', '⭐⭐⭐⭐' → 1..5; anything else → None."""
    if not text:
        return None
    clean = unicodedata.normalize("NFKC", text).strip()
    stars = clean.replace("\ufe0f", "")
    if stars and set(stars) <= {"⭐", "★"} and 1 <= len(stars) <= 5:
        return len(stars)
    match = _RATING_RE.match(clean)
    if not match:
        return None
    value = match.group(1)
    return _CN_DIGITS.get(value) or int(value)


class PagingService:
    def __init__(
        self,
        store: PagingStore,
        policy: Policy,
        messenger: Messenger,
        *,
        crm=None,
        handoff: Optional[HandoffController] = None,
        context: Optional[GuestContext] = None,
        clock: Callable[[], dt.datetime] = utcnow,
        worker_id: Optional[str] = None,
        eraser=None,
    ):
        self.store = store
        self.policy = policy
        self.access = StaffAccess(policy)  # advisors act only on their properties' cases
        self.eraser = eraser  # bot.erasure.GuestEraser: resolving a deletion request erases
        self.messenger = messenger
        self.crm = crm
        self.handoff = handoff
        self.clock = clock
        self.notices = PagingWorker(
            store,
            policy,
            messenger,
            context=context,
            clock=clock,
            worker_id=worker_id or f"app:{os.getpid()}",
        )
        self.supplier = (
            SupplierDesk(crm, store, messenger, names=self._name, clock=clock)
            if crm is not None
            else None
        )

    # ---- helpers --------------------------------------------------------------------------
    def _name(self, userid: Optional[str]) -> str:
        if not userid:
            return "—"
        person = self.policy.people().get(userid)
        return person.name if person else userid

    def _label(self, clock: ClockDTO) -> str:
        try:
            return self.policy.sla_class(clock.sla_class, clock.property_id).label
        except KeyError:
            return clock.sla_class

    async def _guest_name(self, clock: ClockDTO) -> str:
        if self.crm is None:
            return clock.sender_id
        try:
            guest = await asyncio.to_thread(self.crm.find_guest, clock.sender_id)
        except Exception:
            return clock.sender_id
        return (guest.display_name if guest and guest.display_name else None) or clock.sender_id

    async def _audit(self, userid: str, action: str, clock: ClockDTO, **detail) -> None:
        if self.crm is None:
            return
        try:
            await asyncio.to_thread(
                self.crm.record_audit,
                f"{_surface.get()}:{userid}",
                action,
                clock.subject_type,
                clock.subject_id,
                {"case": clock.id, **detail},
            )
        except Exception as exc:
            log.error("audit %s on case #%s not recorded: %s", action, clock.id, exc)

    async def _mirror(self, clock: ClockDTO, status: str, advisor: Optional[str] = None) -> None:
        """Move the ticket / order / handoff on in the CRM (the clock is the SLA's truth)."""
        if self.crm is None or status is None:
            return
        try:
            if clock.subject_type == "ticket":
                await asyncio.to_thread(self.crm.set_ticket_status, clock.subject_id, status)
            elif clock.subject_type == "order":
                await asyncio.to_thread(self.crm.set_order_status, clock.subject_id, status)
            else:
                await asyncio.to_thread(
                    self.crm.set_handoff_status, clock.subject_id, status, advisor_userid=advisor
                )
        except Exception as exc:
            log.error(
                "case #%s: %s %s not set to %s: %s",
                clock.id,
                clock.subject_type,
                clock.subject_id,
                status,
                exc,
            )

    async def fire_notices(self, case_id: int) -> None:
        """Deliver the case's due guest notices now (claimed like any step: exactly once)."""
        now = self.clock()
        for step in await asyncio.to_thread(self.store.steps, case_id, statuses=[rules.PENDING]):
            if step.step.startswith("guest_") and step.due_at <= now:
                claimed = await asyncio.to_thread(
                    self.store.claim_step,
                    step.id,
                    self.notices.worker_id,
                    now,
                    lease=self.notices.lease,
                )
                if claimed:
                    try:
                        await self.notices.fire(step.id)
                    except Exception:
                        log.exception(
                            "notice %s of case #%s: left to the worker", step.step, case_id
                        )

    def _deadline_note(self, clock: ClockDTO, now: dt.datetime) -> str:
        if clock.resolve_due_at is None:
            return "请持续向客人更新进展"
        when = local_time_text(self.policy, clock.resolve_due_at, now)
        if now > clock.resolve_due_at:
            return f"解决时限 {when} 已过"
        return f"请在 {when} 前解决"

    def _ack_late(self, clock: ClockDTO) -> str:
        if clock.acknowledged_at and clock.acknowledged_at > clock.ack_due_at:
            return f"（超时 {format_duration(clock.acknowledged_at - clock.ack_due_at)}）"
        return ""

    async def _pick_case(self, userid: str, command: Command) -> ClockDTO | str:
        """The case a command is about: its number, else the advisor's only matching case."""
        if command.case_id is not None:
            try:
                return await asyncio.to_thread(self.store.clock, command.case_id)
            except ClockNotFound:
                return f"没有编号为 {command.case_id} 的单，请核对卡片上的编号（发送“队列”查看）。"
        mine = await asyncio.to_thread(self.store.clocks, states=rules.OPEN_STATES, holder=userid)
        if command.verb == ACK:
            mine = [c for c in mine if c.state == rules.RUNNING]
        elif command.verb == HANDBACK:
            mine = [c for c in mine if c.takeover_userid == userid and c.handed_back_at is None]
        if len(mine) == 1:
            return mine[0]
        verb_word = {ACK: "接单", TAKEOVER: "接管", HANDBACK: "交还"}[command.verb]
        if not mine:
            return f"请写上编号，例如：{verb_word} 12（发送“队列”查看您的单）。"
        numbers = "、".join(f"#{c.id}" for c in mine[:10])
        return f"您有多个单（{numbers}），请写上编号，例如：{verb_word} {mine[0].id}"

    async def _case_by_guest(self, userid: str, name: str) -> ClockDTO | str:
        """接管 客人: the guest's open case (their newest), matched by name or sender id."""
        candidates = [
            c
            for c in await asyncio.to_thread(self.store.clocks, states=rules.OPEN_STATES)
            if self.access.allows(userid, c.property_id)
        ]
        matches = []
        for clock in candidates:
            if clock.sender_id == name or await self._guest_name(clock) == name:
                matches.append(clock)
        if not matches:
            return (
                f"没有找到“{name}”的待处理单。请用“接管 N”（N 为卡片上的编号），或发送“队列”查看。"
            )
        senders = {c.sender_id for c in matches}
        if len(senders) > 1:
            numbers = "、".join(f"#{c.id}" for c in matches[:10])
            return f"有多位客人叫“{name}”（{numbers}），请用“接管 N”。"
        return max(matches, key=lambda c: c.created_at)

    # ---- the commands ---------------------------------------------------------------------
    async def handle_command(self, userid: str, text: str) -> str:
        """The confirmation (or the reason why not) for one advisor message."""
        try:
            command = parse(text)
        except CommandError as exc:
            return exc.reply
        if command.verb == HELP:
            return HELP_TEXT
        if userid not in self.policy.people():
            return (
                f"您（{userid}）不在值班名单中，不能处理单。请主管把您加入 SLA 策略文件"
                f"（{os.path.basename(self.policy.source)}）的 roster。"
            )
        if command.verb == QUEUE:
            return await self.queue_text(userid)
        if command.verb == TAKEOVER and command.case_id is None and command.guest:
            clock = await self._case_by_guest(userid, command.guest)
        else:
            clock = await self._pick_case(userid, command)
        if isinstance(clock, str):
            return clock
        if not self.access.allows(userid, clock.property_id):
            log.info(
                "advisor %s refused case #%s (property %s)", userid, clock.id, clock.property_id
            )
            return (
                f"#{clock.id} 不属于您值班的酒店，不能处理。" "如需协助，请联系该酒店的值班主管。"
            )
        handler = {
            ACK: self._ack,
            TAKEOVER: self._take_over,
            NOTE: self._note,
            RESOLVE: self._resolve,
            HANDBACK: self._hand_back,
            REPLY: self._reply,
            CONFIRM: self._supplier,
            DECLINE: self._supplier,
            COMPENSATE: self._compensate,
        }[command.verb]
        return await handler(userid, clock, command)

    async def act(
        self,
        userid: str,
        case_id: int,
        verb: str,
        text: Optional[str] = None,
        *,
        surface: str = "console",
    ) -> str:
        """One action on one case from another staff surface (the console): the same rules,
        notices, audit and confirmations as the WeCom command, and the same property rule."""
        if verb not in VERBS:
            raise ValueError(f"unknown action {verb!r}")
        text = (text or "").strip() or None
        if verb in (NOTE, RESOLVE, REPLY, DECLINE) and not text:
            raise ValueError("这个操作需要填写内容")
        try:
            clock = await asyncio.to_thread(self.store.clock, case_id)
        except ClockNotFound:
            return f"没有编号为 {case_id} 的单。"
        if not self.access.allows(userid, clock.property_id):  # the caller checked too
            return f"#{clock.id} 不属于您值班的酒店，不能处理。"
        handler = {
            ACK: self._ack,
            TAKEOVER: self._take_over,
            NOTE: self._note,
            RESOLVE: self._resolve,
            HANDBACK: self._hand_back,
            REPLY: self._reply,
            CONFIRM: self._supplier,
            DECLINE: self._supplier,
        }[verb]
        token = _surface.set(surface)
        try:
            return await handler(userid, clock, Command(verb, case_id, text=text))
        finally:
            _surface.reset(token)

    async def reassign(self, userid: str, case_id: int, to_userid: str) -> str:
        """Give an open case to another advisor of its property, who is told in the WeCom app."""
        now = self.clock()
        clock, outcome = await asyncio.to_thread(self.store.reassign, case_id, to_userid, now)
        if outcome == "closed":
            return f"#{clock.id} {STATE_WORDS.get(clock.state, clock.state)}，无法转派。"
        if outcome == "same":
            return f"#{clock.id} 已由 {self._name(to_userid)} 负责。"
        token = _surface.set("console")
        try:
            await self._audit(userid, "sla.reassign", clock, to=to_userid)
        finally:
            _surface.reset(token)
        try:
            await self.messenger.app_text(
                to_userid,
                f"{self._name(userid)} 把 #{clock.id}（{self._label(clock)} · "
                f"{await self._guest_name(clock)}）转给了您。{self._deadline_note(clock, now)}。",
                dedupe_key=f"paging:reassign:{clock.id}:{to_userid}:{int(now.timestamp())}",
            )
        except Exception as exc:
            log.warning("reassign notice of #%s to %s failed: %s", clock.id, to_userid, exc)
            return f"已把 #{clock.id} 转给 {self._name(to_userid)}，但企业微信通知未发出：{exc}"
        return f"已把 #{clock.id} 转给 {self._name(to_userid)}，对方已收到企业微信通知。"

    async def _ack(self, userid: str, clock: ClockDTO, command: Command) -> str:
        if clock.subject_type == "handoff":  # the guest asked for a person: joining is the ack
            return await self._take_over(userid, clock, command)
        now = self.clock()
        clock, outcome = await asyncio.to_thread(self.store.acknowledge, clock.id, userid, now)
        label, guest = self._label(clock), await self._guest_name(clock)
        if outcome == "closed":
            return f"#{clock.id} {STATE_WORDS.get(clock.state, clock.state)}，无需接单。"
        if outcome == "taken":
            return (
                f"#{clock.id} 已由 {self._name(clock.assignee_userid)} 于 "
                f"{local_time_text(self.policy, clock.acknowledged_at, now)} 接单。"
            )
        if outcome == "already_yours":
            return f"您已接过 #{clock.id}（{label} · {guest}）。{self._deadline_note(clock, now)}。"
        await self._mirror(clock, ACK_STATUS.get(clock.subject_type))
        await self._audit(userid, "sla.acknowledge", clock, late=bool(self._ack_late(clock)))
        await self.fire_notices(clock.id)
        if clock.subject_type == "order":
            return (
                f"已接单 #{clock.id}（{label} · {guest}）{self._ack_late(clock)}。"
                f"客人已收到通知。请联系供应商：能安排回复“确认 {clock.id}”，"
                f"安排不了回复“婉拒 {clock.id} 原因”。{self._deadline_note(clock, now)}。"
            )
        then = (
            "完成后填写结案说明"
            if _surface.get() == "console"
            else f"完成后回复“解决 {clock.id} 说明”"
        )
        return (
            f"已接单 #{clock.id}（{label} · {guest}）{self._ack_late(clock)}。"
            f"客人已收到通知。{self._deadline_note(clock, now)}，{then}。"
        )

    async def _take_over(self, userid: str, clock: ClockDTO, command: Command) -> str:
        now = self.clock()
        clock, outcome = await asyncio.to_thread(self.store.take_over, clock.id, userid, now)
        guest = await self._guest_name(clock)
        if outcome == "closed":
            return f"#{clock.id} {STATE_WORDS.get(clock.state, clock.state)}，无法接管。"
        if outcome == "taken":
            return f"#{clock.id} 的客人 {guest} 正由 {self._name(clock.takeover_userid)} 接待。"
        if outcome == "already_yours":
            return f"您正在接待 #{clock.id} 的客人 {guest}。结束后回复“交还 {clock.id}”。"
        await self._mirror(clock, ACK_STATUS.get(clock.subject_type), advisor=userid)
        await self.fire_notices(clock.id)  # before the 微信客服 session moves to the advisor
        problems = []
        if self.handoff and _surface.get() == "console":
            problems = await self.handoff.take_over(clock.sender_id, userid, move_kf=False)
        elif self.handoff:
            problems = await self.handoff.take_over(clock.sender_id, userid)
        await self._audit(userid, "sla.take_over", clock, problems=problems or None)
        if _surface.get() == "console":
            text = (
                f"已接管 #{clock.id}{self._ack_late(clock)}：机器人对 {guest} 已暂停，"
                f"请在本页直接回复客人；结束后点“交还机器人”。"
            )
        else:
            text = (
                f"已接管 #{clock.id}{self._ack_late(clock)}：机器人对 {guest} 已暂停，"
                f"请直接与客人对话（微信客服客人在企业微信的微信客服里回复）。"
                f"结束后回复“交还 {clock.id}”。"
            )
        if problems:
            text += "\n注意：" + "；".join(problems)
        return text

    async def _supplier(self, userid: str, clock: ClockDTO, command: Command) -> str:
        """确认 / 婉拒: the supplier's answer to an order (bot.orders.supplier)."""
        if clock.subject_type != "order":
            return f"#{clock.id} 不是订单，“确认/婉拒”只用于附加服务订单。"
        if self.supplier is None:
            return "未连接客户资料库，无法记录供应商结果。"
        if command.verb == CONFIRM:
            outcome = await self.supplier.confirm(clock.subject_id, userid, command.text)
        else:
            outcome = await self.supplier.decline(clock.subject_id, userid, command.text or "")
        return outcome.message

    async def _compensate(self, userid: str, clock: ClockDTO, command: Command) -> str:
        """补偿: what the advisor offered for a complaint (SPEC: over-compensation for a service
        failure). Recorded on the case, audited, shown on later cards and pages about the guest."""
        if clock.subject_type != "ticket" or not clock.sla_class.startswith("complaint"):
            return f"#{clock.id} 不是投诉，“补偿”只用于投诉。"
        await asyncio.to_thread(self.store.add_note, clock.id, userid, "compensation", command.text)
        await self._audit(userid, "ticket.compensation", clock, offered=command.text)
        return (
            f"已记录 #{clock.id} 的补偿：{command.text}。客人之后的来单会标注“曾投诉”并显示此记录；"
            f"如需告诉客人，请用“回复 {clock.id} 内容”。"
        )

    async def _note(self, userid: str, clock: ClockDTO, command: Command) -> str:
        await asyncio.to_thread(self.store.add_note, clock.id, userid, "note", command.text)
        await self._audit(userid, "sla.note", clock)
        return f"已备注 #{clock.id}。"

    async def _reply(self, userid: str, clock: ClockDTO, command: Command) -> str:
        if (
            _surface.get() != "console"
            and SenderId.parse(clock.sender_id).is_kf
            and clock.takeover_userid
            and clock.handed_back_at is None
        ):
            return "该客人正由您在微信客服中接待，请直接在微信客服里回复。"
        try:
            await self.messenger.guest_text(
                clock.sender_id,
                f"{self._name(userid)}：{command.text}",
                dedupe_key=f"relay:{clock.id}:{int(self.clock().timestamp() * 1000)}",
            )
        except Exception as exc:
            return f"#{clock.id} 回复未发出：{exc}"
        await asyncio.to_thread(self.store.add_note, clock.id, userid, "relay", command.text)
        await self._audit(userid, "sla.reply", clock)
        return f"已发送给客人 {await self._guest_name(clock)}（#{clock.id}）。"

    async def _resolve(self, userid: str, clock: ClockDTO, command: Command) -> str:
        now = self.clock()
        problems = []
        if clock.takeover_userid and clock.handed_back_at is None and self.handoff:
            problems = await self.handoff.hand_back(clock.sender_id)
        clock, outcome = await asyncio.to_thread(
            self.store.resolve, clock.id, userid, command.text, now
        )
        if outcome == "closed":
            return f"#{clock.id} {STATE_WORDS.get(clock.state, clock.state)}。"
        await self._mirror(clock, RESOLVE_STATUS[clock.subject_type])
        ack = rules.outcome(clock.ack_due_at, clock.acknowledged_at, now)
        res = rules.outcome(clock.resolve_due_at, clock.resolved_at, now)
        await self._audit(
            userid, "sla.resolve", clock, ack=ack, resolve=res, problems=problems or None
        )
        await self.fire_notices(clock.id)
        words = {"met": "按时", "missed": "超时", "none": "—", "pending": "—"}
        cls = self.policy.sla_class(clock.sla_class, clock.property_id)
        text = (
            f"已结案 #{clock.id}（接单{words[ack]}，解决{words[res]}）。客人已收到处理说明"
            f"{'并被邀请评分' if cls.ask_rating else ''}。"
        )
        if problems:
            text += "\n注意：" + "；".join(problems)
        erased = await self._erase_if_deletion(userid, clock, command.text or "")
        return text + erased if erased else text

    async def _erase_if_deletion(self, userid: str, clock: ClockDTO, note: str) -> str:
        """Resolving a deletion request carries it out (bot.erasure): the advisor verified the
        guest's identity before resolving, as the request's reply promised."""
        if self.eraser is None or clock.subject_type != "ticket" or self.crm is None:
            return ""
        ticket = await asyncio.to_thread(self.crm.ticket, clock.subject_id)
        if ticket is None or ticket.kind != "data_deletion":
            return ""
        from bot.erasure import ErasureIncomplete, LegalHold

        try:
            await asyncio.to_thread(
                self.eraser.erase,
                clock.sender_id,
                actor=f"advisor:{userid}",
                reason=f"deletion request #{ticket.id} resolved: {note}"[:500],
            )
        except LegalHold:
            return "\n该客人处于法律保全（legal hold）状态，资料未删除，请联系主管。"
        except ErasureIncomplete as exc:
            log.warning("erasure for case #%s postponed: %s", clock.id, exc)
            return "\n暂时无法完成删除（企业微信未响应），系统会在 24 小时期限内自动重试。"
        return "\n已删除该客人的全部个人资料（仅保留删除记录）。"

    async def _hand_back(self, userid: str, clock: ClockDTO, command: Command) -> str:
        now = self.clock()
        if not clock.takeover_userid or clock.handed_back_at is not None:
            return f"#{clock.id} 目前没有人工接管，机器人正常接待。"
        problems = await self.handoff.hand_back(clock.sender_id) if self.handoff else []
        clock, outcome = await asyncio.to_thread(self.store.hand_back, clock.id, userid, now)
        if outcome != "handed_back":
            return f"#{clock.id} 目前没有人工接管，机器人正常接待。"
        if clock.subject_type == "handoff":  # the person the guest asked for has been and gone
            clock, _ = await asyncio.to_thread(
                self.store.resolve, clock.id, userid, "人工服务结束，交还机器人", now, notice=False
            )
            await self._mirror(clock, RESOLVE_STATUS["handoff"])
        await self._audit(userid, "sla.hand_back", clock, problems=problems or None)
        await self.fire_notices(clock.id)
        text = f"已交还 #{clock.id}：机器人恢复接待 {await self._guest_name(clock)}。"
        if clock.is_open:
            text += f"该单仍未结案，{self._deadline_note(clock, now)}。"
        if problems:
            text += "\n注意：" + "；".join(problems)
        return text

    async def queue_text(self, userid: str) -> str:
        now = self.clock()
        open_cases = [
            c
            for c in await asyncio.to_thread(self.store.clocks, states=rules.OPEN_STATES)
            if self.access.allows(userid, c.property_id)
        ]
        mine = [c for c in open_cases if c.holder == userid]
        waiting = [c for c in open_cases if c.state == rules.RUNNING and c.holder != userid]

        async def line(c: ClockDTO) -> str:
            if c.state == rules.RUNNING:
                due, what = c.ack_due_at, "接单"
            else:
                due, what = c.resolve_due_at, "解决"
            deadline = (
                "" if due is None else f" · {what} {local_time_text(self.policy, due, now)} 前"
            )
            if due is not None and now > due:
                deadline += f"（已超时 {format_duration(now - due)}）"
            talking = " · 接管中" if c.takeover_userid and c.handed_back_at is None else ""
            return f"#{c.id} {self._label(c)} · {await self._guest_name(c)}{deadline}{talking}"

        parts = [f"您的待办（{len(mine)}）："]
        parts += [await line(c) for c in mine[:15]] or ["无"]
        parts.append(f"待接单（{len(waiting)}）：")
        parts += [await line(c) for c in waiting[:15]] or ["无"]
        if self.crm is not None:  # guests' names went to this advisor: a staff read
            from bot.audit import Staff

            try:
                await asyncio.to_thread(
                    self.crm.record_audit,
                    Staff("advisor", userid).actor,
                    "case.queue",
                    None,
                    None,
                    {"cases": [c.id for c in (mine[:15] + waiting[:15])]},
                )
            except Exception as exc:
                log.error("queue of %s not audited: %s", userid, exc)
                return "暂时无法查看队列，请稍后再试。"
        return "\n".join(parts)

    async def on_app_message(self, message) -> bool:
        """The WeCom app handler: answer every text an advisor sends; ignore app events."""
        if getattr(message, "msgtype", None) != "text":
            return False
        reply = await self.handle_command(message.userid, message.text or "")
        dedupe = f"paging:reply:{message.msgid}" if getattr(message, "msgid", None) else None
        await self.messenger.app_text(message.userid, reply, dedupe_key=dedupe)
        return True

    # ---- the guest side -------------------------------------------------------------------
    async def maybe_record_rating(self, sender_id: str, text: str) -> Optional[str]:
        """If the guest answers a rating request with 1-5, store it and return the thanks (the
        caller sends it and does not pass the message to the bot); else None."""
        score = parse_rating(text)
        if score is None:
            return None
        now = self.clock()
        clock = await asyncio.to_thread(self.store.awaiting_rating, sender_id, now)
        if clock is None:
            return None
        clock, stored = await asyncio.to_thread(self.store.record_rating, clock.id, score, now)
        if not stored:
            return None
        if self.crm is not None and clock.subject_type == "ticket":
            try:
                await asyncio.to_thread(
                    self.crm.set_ticket_status, clock.subject_id, "resolved", rating=score
                )
            except Exception as exc:
                log.error(
                    "rating of case #%s not copied to ticket %s: %s",
                    clock.id,
                    clock.subject_id,
                    exc,
                )
        if self.crm is not None:
            try:
                await asyncio.to_thread(
                    self.crm.record_audit,
                    f"guest:{sender_id}",
                    "sla.rating",
                    clock.subject_type,
                    clock.subject_id,
                    {"case": clock.id, "rating": score},
                )
            except Exception as exc:
                log.error("audit of the rating of case #%s failed: %s", clock.id, exc)
        if score <= 2:  # a poor rating is worth a supervisor's look
            prop = self.policy.property(clock.property_id)
            for person in prop.supervisors:
                try:
                    await self.messenger.app_text(
                        person.userid,
                        f"客人 {await self._guest_name(clock)} 对 #{clock.id}（{self._label(clock)}，"
                        f"处理人 {self._name(clock.resolved_by)}）评分 {score} 分，请关注。",
                        dedupe_key=f"paging:lowrating:{clock.id}:{person.userid}",
                    )
                except Exception as exc:
                    log.warning("low rating alert to %s failed: %s", person.userid, exc)
        return guest_text(
            "guest_rating_thanks", self.policy, label=self._label(clock), case_id=clock.id, now=now
        )

    async def forward_guest_message(self, sender_id: str, text: str) -> bool:
        """While an advisor has taken over (bot paused), what the guest writes goes to them in the
        app too (微信客服 guests excepted: the advisor sees those in 微信客服 itself)."""
        clock = await asyncio.to_thread(self.store.active_takeover, sender_id)
        if clock is None or SenderId.parse(sender_id).is_kf:
            return False
        await self.messenger.app_text(
            clock.takeover_userid,
            f"【#{clock.id} {await self._guest_name(clock)}】{text}\n（回复客人：回复 {clock.id} 内容）",
        )
        return True

"""Campaigns (会员日 member days and one-offs): create, preview, send, report, cancel, remind.

The flow, and why:
- `create` validates everything a marketer wrote (segment, sandboxed template, attachments,
  surface, schedule) and refuses with the field or template line at fault: nothing can fail for
  a reason known in advance at send time.
- `preview` is the dry run: members, who would get it now, who is left out and why, sample texts.
- `send` first *claims* the campaign (a compare-and-set scheduled → sending, after
  `FOR UPDATE SKIP LOCKED` on PostgreSQL), so two workers never both send it. It then recomputes
  the audience from the database as it is now (an opt-out since scheduling counts), reserves each
  recipient's cap slot in the `mass_sends` ledger in the same transaction (serialised by an
  advisory lock on PostgreSQL, so two campaigns cannot both take a guest's last slot), and only
  then calls WeCom: `add_msg_template` per owning advisor and text (at most 10,000 customers per
  call). Customers WeCom refuses (`fail_list`) or a failed call give their slot back.
- `report` reads WeCom's side (`get_groupmsg_list_v2`, `get_groupmsg_task`,
  `get_groupmsg_send_result`) into per-advisor confirmed / not and per-recipient sent / not a
  contact / WeCom's own limit / failed, plus replies and add-on orders within the attribution
  window.
- `cancel` stops a scheduled campaign, or the tasks advisors have not confirmed
  (`cancel_groupmsg_send`); `remind` nudges advisors who have not confirmed (at most 3 a day).

All methods are async; database work runs in worker threads (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from collections import defaultdict
from typing import Any, Callable, Optional

from sqlalchemy import and_, delete, func, or_, select, text as sql_text, update
from sqlalchemy.engine import Engine

from bot.core.time import utcnow
from bot.crm import models as cm
from bot.crm.db import make_session_factory, session_scope
from bot.crm.store import CHINA_TZ
from bot.marketing import audience as aud
from bot.marketing.facts import GuestFacts, count_guests, guests_outside_tiers, load_facts
from bot.marketing.models import Campaign, CampaignRecipient, CampaignTask, MassSend
from bot.marketing.policy import MarketingPolicy
from bot.marketing.segments import SegmentError, parse_segment
from bot.marketing.templates import TemplateRejected, check_template, make_environment, render
from bot.marketing.wecom_api import TransportError, WeComAPIError

log = logging.getLogger(__name__)

KINDS = ("member_day", "one_off")
SURFACES = ("single", "group", "kf")
MAX_PER_CALL = 10_000
LEASE = dt.timedelta(minutes=10)
MAX_REMINDS_PER_DAY = 3
ATTACHMENT_FIELDS = {
    "image": ("media_id", "pic_url"),
    "link": ("title", "url"),
    "miniprogram": ("title", "pic_media_id", "appid", "page"),
}
SPEC_KEYS = {"name", "kind", "surface", "segment", "template", "attachments", "schedule", "groups"}
# WeCom's per-recipient statuses (get_groupmsg_send_result) to ours.
RESULT_STATUS = {0: "queued", 1: "sent", 2: "not_contact", 3: "limit"}


class CampaignError(ValueError):
    """A campaign file or request that cannot be accepted; the message says what and where."""


class CampaignNotFound(LookupError):
    pass


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _aware(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _check_attachments(items: Any) -> list:
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > 9:
        raise CampaignError("attachments: a list of at most 9 (image, link, miniprogram)")
    clean = []
    for n, item in enumerate(items, 1):
        kind = item.get("msgtype") if isinstance(item, dict) else None
        if kind not in ATTACHMENT_FIELDS:
            raise CampaignError(
                f"attachments[{n}]: msgtype must be one of "
                f"{', '.join(ATTACHMENT_FIELDS)}, got {kind!r}"
            )
        body = item.get(kind)
        needed = ATTACHMENT_FIELDS[kind]
        if not isinstance(body, dict):
            raise CampaignError(f"attachments[{n}]: needs a {kind!r} mapping")
        if kind == "image":
            if not any(body.get(k) for k in needed):
                raise CampaignError(f"attachments[{n}]: image needs media_id or pic_url")
        else:
            missing = [k for k in needed if not body.get(k)]
            if missing:
                raise CampaignError(f"attachments[{n}]: {kind} needs {', '.join(missing)}")
        if kind == "link" and not str(body["url"]).startswith(("https://", "http://")):
            raise CampaignError(f"attachments[{n}]: link url must be http(s)")
        clean.append({"msgtype": kind, kind: dict(body)})
    return clean


def _schedule(value: Any, now: dt.datetime) -> dt.datetime:
    if value in (None, "", "now"):
        return now
    if isinstance(value, dt.datetime):
        when = value
    else:
        try:
            when = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise CampaignError(
                f"schedule: an ISO time like 2026-12-08T10:00:00+08:00, " f"got {value!r}"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=CHINA_TZ)  # marketers write China time
    return when.astimezone(dt.timezone.utc)


def validate_spec(spec: Any, now: dt.datetime) -> dict:
    """A campaign file's mapping, checked; returns the row values."""
    if not isinstance(spec, dict):
        raise CampaignError("a campaign is a mapping (name, segment, template, ...)")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise CampaignError(
            f"unknown key(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(SPEC_KEYS))}"
        )
    name = str(spec.get("name") or "").strip()
    if not name or len(name) > 128:
        raise CampaignError("name: required, at most 128 characters")
    kind = spec.get("kind", "one_off")
    if kind not in KINDS:
        raise CampaignError(f"kind: one of {', '.join(KINDS)}, got {kind!r}")
    surface = spec.get("surface", "single")
    if surface not in SURFACES:
        raise CampaignError(f"surface: one of {', '.join(SURFACES)}, got {surface!r}")
    try:
        segment = parse_segment(spec.get("segment") or {})
    except SegmentError as exc:
        raise CampaignError(str(exc)) from None
    template = spec.get("template")
    try:
        check_template(template)
    except TemplateRejected as exc:
        raise CampaignError(str(exc)) from None
    groups = spec.get("groups") or {}
    if surface == "group":
        if (
            not isinstance(groups, dict)
            or not groups
            or not all(
                isinstance(v, list) and v and all(isinstance(c, str) for c in v)
                for v in groups.values()
            )
        ):
            raise CampaignError("groups: for surface group, a mapping advisor -> [chat ids]")
    elif groups:
        raise CampaignError("groups: only for surface group")
    return {
        "name": name,
        "kind": kind,
        "surface": surface,
        "segment": segment.spec,
        "template": template,
        "attachments": _check_attachments(spec.get("attachments")),
        "chat_ids": groups,
        "scheduled_at": _schedule(spec.get("schedule"), now),
    }


class CampaignService:
    """The marketer's campaigns. `wecom` is a `GroupMsgAPI` (needed for send/report/cancel/remind)."""

    def __init__(
        self,
        engine: Engine,
        policy: MarketingPolicy,
        *,
        wecom=None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.wecom = wecom
        self.clock = clock
        self._factory = make_session_factory(engine)
        self._env = make_environment()

    def _session(self):
        return session_scope(self._factory)

    def _today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(CHINA_TZ).date()

    # ---- create / read ---------------------------------------------------------------------
    def create(self, spec: Any, *, actor: str) -> int:
        now = self.clock()
        values = validate_spec(spec, now)
        with self._session() as s:
            row = Campaign(**values, status="scheduled", created_by=actor, created_at=now)
            s.add(row)
            s.flush()
            s.add(
                cm.AuditLog(
                    actor=actor,
                    action="campaign.create",
                    subject_type="campaign",
                    subject_id=str(row.id),
                    detail={"name": values["name"]},
                )
            )
            return row.id

    def get(self, campaign_id: int) -> dict:
        with self._session() as s:
            row = s.get(Campaign, campaign_id)
            if row is None:
                raise CampaignNotFound(f"no campaign #{campaign_id}")
            return self._as_dict(row)

    def list(self) -> list[dict]:
        with self._session() as s:
            return [
                self._as_dict(r)
                for r in s.execute(select(Campaign).order_by(Campaign.id)).scalars()
            ]

    @staticmethod
    def _as_dict(row: Campaign) -> dict:
        def iso(v):
            return _aware(v).isoformat() if v else None

        return {
            "id": row.id,
            "name": row.name,
            "kind": row.kind,
            "surface": row.surface,
            "status": row.status,
            "segment": row.segment,
            "template": row.template,
            "attachments": row.attachments,
            "groups": row.chat_ids,
            "scheduled_at": iso(row.scheduled_at),
            "created_by": row.created_by,
            "created_at": iso(row.created_at),
            "sent_at": iso(row.sent_at),
            "cancelled_at": iso(row.cancelled_at),
            "error": row.error,
        }

    # ---- audience ----------------------------------------------------------------------------
    def _members(
        self, campaign: dict, now: dt.datetime, outside: Optional[list] = None
    ) -> tuple[list[GuestFacts], int]:
        """Segment members at `now`; non-members with the rules they fail go to `outside`."""
        today = self._today(now)
        segment = parse_segment(campaign["segment"])
        # Templates and the audience checks read bookings, tags and consent; the tiers a
        # member cannot have are skipped in SQL (and listed cheaply for the preview).
        facts = load_facts(
            self.engine,
            today,
            tiers=segment.tiers,
            needs=segment.needs | {"bookings", "tags", "consent"},
        )
        total = len(facts)
        if segment.tiers is not None:
            total = count_guests(self.engine)
            if outside is not None:
                outside.extend(
                    {
                        "sender_id": sid,
                        "name": name,
                        "reason": "outside_segment",
                        "rules": [segment.tier_rule()],
                    }
                    for sid, name in guests_outside_tiers(self.engine, segment.tiers, 200)
                )
        members = []
        for f in facts:
            failed = segment.evaluate(f, today, self.policy)
            if not failed:
                members.append(f)
            elif outside is not None:
                outside.append(
                    {
                        "sender_id": f.sender_id,
                        "name": f.name,
                        "reason": "outside_segment",
                        "rules": failed,
                    }
                )
        return members, total

    def _audience(
        self, campaign: dict, members: list[GuestFacts], now: dt.datetime, caps=None
    ) -> aud.Audience:
        if caps is None:
            caps = aud.cap_counts(
                self.engine, self.policy, now, [aud.guest_target(f.id) for f in members]
            )
        kf_open = aud.kf_windows(self.engine, now) if campaign["surface"] == "kf" else None
        return aud.audience(
            members,
            surface=campaign["surface"],
            policy=self.policy,
            now=now,
            caps=caps,
            kf_open=kf_open,
        )

    def preview(self, campaign_id: int, *, samples: int = 3) -> dict:
        """The dry run, evaluated at the scheduled time (or now, if that has passed)."""
        campaign = self.get(campaign_id)
        now = self.clock()
        wanted = max(now, dt.datetime.fromisoformat(campaign["scheduled_at"]))
        at = self.policy.quiet_ends(wanted)  # a send in the quiet hours waits for their end
        template = self._env.from_string(campaign["template"])
        today = self._today(at)
        if campaign["surface"] == "group":
            return {
                **self._preview_groups(campaign, template, at, today),
                "held_by_quiet_hours": at != wanted,
            }
        outside: list[dict] = []
        members, total = self._members(campaign, at, outside)
        result = self._audience(campaign, members, at)
        return {
            "campaign": campaign_id,
            "name": campaign["name"],
            "status": campaign["status"],
            "evaluated_at": at.isoformat(),
            "guests": total,
            "segment_members": len(members),
            "recipients": len(result.eligible),
            "recipient_list": [
                {
                    "sender_id": f.sender_id,
                    "name": f.name,
                    "external_userid": f.external_userid,
                    "advisor": f.owner_userid,
                }
                for f in result.eligible
            ],
            "left_out": result.counts(),
            "left_out_list": [
                {"sender_id": f.sender_id, "name": f.name, "reason": r} for f, r in result.left_out
            ]
            + outside[:200],
            "outside_segment": total - len(members),
            "held_by_quiet_hours": at != wanted,
            "samples": [
                {"sender_id": f.sender_id, "text": render(template, f, today)}
                for f in result.eligible[:samples]
            ],
        }

    def _group_rows(self, campaign: dict) -> list[tuple[str, str]]:
        return [(advisor, chat) for advisor, chats in campaign["groups"].items() for chat in chats]

    def _preview_groups(self, campaign: dict, template, at: dt.datetime, today) -> dict:
        rows = self._group_rows(campaign)
        caps = aud.cap_counts(self.engine, self.policy, at, [aud.group_target(c) for _, c in rows])
        limit, quiet = self.policy.cap.limit_at(at), self.policy.in_quiet_hours(at)
        left = [
            {
                "chat_id": c,
                "reason": "over_cap" if caps[aud.group_target(c)] >= limit else "quiet_hours",
            }
            for _, c in rows
            if caps[aud.group_target(c)] >= limit or quiet
        ]
        text = template.render(**_group_context(today)).strip()
        return {
            "campaign": campaign["id"],
            "name": campaign["name"],
            "status": campaign["status"],
            "evaluated_at": at.isoformat(),
            "groups": len(rows),
            "recipients": len(rows) - len(left),
            "left_out_list": left,
            "left_out": dict(_count(r["reason"] for r in left)),
            "samples": [{"chat_id": rows[0][1], "text": text}] if rows else [],
        }

    # ---- send --------------------------------------------------------------------------------
    def _claim(self, campaign_id: int, worker_id: str, now: dt.datetime) -> Optional[dict]:
        """scheduled (and due) → sending, or a sending campaign whose worker's lease ran out;
        None when someone else has it or it is not due."""
        with self._session() as s:
            stmt = select(Campaign.id).where(Campaign.id == campaign_id)
            if self.engine.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            if s.execute(stmt).scalar_one_or_none() is None:
                return None
            claimed = s.execute(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    or_(
                        and_(Campaign.status == "scheduled", Campaign.scheduled_at <= now),
                        and_(Campaign.status == "sending", Campaign.claimed_at < now - LEASE),
                    ),
                )
                .values(status="sending", claimed_by=worker_id, claimed_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed != 1:
                return None
        return self.get(campaign_id)

    def due(self, now: dt.datetime) -> list[int]:
        with self._session() as s:
            return list(
                s.execute(
                    select(Campaign.id)
                    .where(
                        or_(
                            and_(Campaign.status == "scheduled", Campaign.scheduled_at <= now),
                            and_(Campaign.status == "sending", Campaign.claimed_at < now - LEASE),
                        )
                    )
                    .order_by(Campaign.scheduled_at)
                ).scalars()
            )

    async def send_due(self, worker_id: Optional[str] = None) -> list[dict]:
        results = []
        for campaign_id in await asyncio.to_thread(self.due, self.clock()):
            results.append(await self.send(campaign_id, worker_id=worker_id))
        return results

    async def send(
        self, campaign_id: int, *, worker_id: Optional[str] = None, force_now: bool = False
    ) -> dict:
        """Send a due campaign (`force_now`: a scheduled one now). Returns what happened; a
        campaign another worker holds, or already sent, is a no-op that says so."""
        worker_id = worker_id or default_worker_id()
        now = self.clock()
        campaign = await asyncio.to_thread(self.get, campaign_id)
        if force_now and campaign["status"] == "scheduled":
            await asyncio.to_thread(self._reschedule, campaign_id, now)
        claimed = await asyncio.to_thread(self._claim, campaign_id, worker_id, now)
        if claimed is None:
            current = await asyncio.to_thread(self.get, campaign_id)
            return {
                "campaign": campaign_id,
                "sent": False,
                "status": current["status"],
                "why": _not_claimed_why(current, now),
            }
        if self.policy.in_quiet_hours(now):
            until = self.policy.quiet_ends(now)
            await asyncio.to_thread(self._release, campaign_id, until)
            return {
                "campaign": campaign_id,
                "sent": False,
                "status": "scheduled",
                "why": f"quiet hours: rescheduled to {until.isoformat()}",
            }
        try:
            if claimed["surface"] == "group":
                plan = await asyncio.to_thread(self._plan_groups, claimed, now)
            else:
                plan = await asyncio.to_thread(self._plan_guests, claimed, now)
            summary = await self._deliver(claimed, plan)
        except Exception as exc:
            log.exception("campaign #%s failed", campaign_id)
            await asyncio.to_thread(self._finish, campaign_id, "failed", str(exc)[:500])
            raise
        await asyncio.to_thread(self._finish, campaign_id, "sent", None)
        return {"campaign": campaign_id, "sent": True, "status": "sent", **summary}

    def _reschedule(self, campaign_id: int, when: dt.datetime) -> None:
        with self._session() as s:
            s.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status == "scheduled")
                .values(scheduled_at=when)
                .execution_options(synchronize_session=False)
            )

    def _release(self, campaign_id: int, until: dt.datetime) -> None:
        with self._session() as s:
            s.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(status="scheduled", scheduled_at=until, claimed_by=None, claimed_at=None)
                .execution_options(synchronize_session=False)
            )

    def _finish(self, campaign_id: int, status: str, error: Optional[str]) -> None:
        with self._session() as s:
            s.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(status=status, error=error, sent_at=self.clock())
                .execution_options(synchronize_session=False)
            )

    def _lock_ledger(self, s) -> None:
        """Two campaigns must not both take a guest's last cap slot: one at a time reserves."""
        if self.engine.dialect.name == "postgresql":
            s.execute(sql_text("SELECT pg_advisory_xact_lock(hashtext('concierge.mass_sends'))"))

    def _plan_guests(self, campaign: dict, now: dt.datetime) -> list[dict]:
        """Recompute the audience, write the recipient rows, reserve the cap slots; returns the
        WeCom calls to make (one per advisor and text, at most MAX_PER_CALL customers each).
        On a resumed campaign (a worker died), guests already recorded are not planned again."""
        today = self._today(now)
        members, _ = self._members(campaign, now)
        template = self._env.from_string(campaign["template"])
        source = f"campaign:{campaign['id']}"
        calls: list[dict] = []
        with self._session() as s:
            self._lock_ledger(s)
            done = set(
                s.execute(
                    select(CampaignRecipient.guest_id).where(
                        CampaignRecipient.campaign_id == campaign["id"]
                    )
                ).scalars()
            )
            members = [f for f in members if f.id not in done]
            caps = aud.cap_counts(
                self.engine,
                self.policy,
                now,
                [aud.guest_target(f.id) for f in members],
                conn=s.connection(),
            )
            result = self._audience(campaign, members, now, caps=caps)
            for f, reason in result.left_out:
                s.add(
                    CampaignRecipient(
                        campaign_id=campaign["id"],
                        guest_id=f.id,
                        target=aud.guest_target(f.id),
                        status="left_out",
                        reason=reason,
                        advisor_userid=f.owner_userid,
                    )
                )
            grouped: dict[tuple, list] = defaultdict(list)
            for f in result.eligible:
                text = render(template, f, today)
                key = (f.owner_userid if campaign["surface"] == "single" else f.kf_open_kfid, text)
                grouped[key].append(f)
            for (owner, text), guests in grouped.items():
                for start in range(0, len(guests), MAX_PER_CALL):
                    chunk = guests[start : start + MAX_PER_CALL]
                    task = CampaignTask(
                        campaign_id=campaign["id"],
                        advisor_userid=owner,
                        chat_type=campaign["surface"],
                        recipients=len(chunk),
                        status="creating",
                    )
                    s.add(task)
                    s.flush()
                    ids = []
                    for f in chunk:
                        row = CampaignRecipient(
                            campaign_id=campaign["id"],
                            guest_id=f.id,
                            target=(
                                f.external_userid
                                if campaign["surface"] == "single"
                                else f.kf_external_userid
                            ),
                            advisor_userid=owner,
                            task_id=task.id,
                            text=text,
                            status="pending",
                        )
                        s.add(row)
                        s.add(MassSend(target=aud.guest_target(f.id), source=source, sent_at=now))
                        ids.append(row)
                    s.flush()
                    calls.append(
                        {
                            "task_id": task.id,
                            "sender": owner,
                            "text": text,
                            "targets": [r.target for r in ids],
                            "ledger": [aud.guest_target(f.id) for f in chunk],
                        }
                    )
            return calls

    def _plan_groups(self, campaign: dict, now: dt.datetime) -> list[dict]:
        today = self._today(now)
        text = self._env.from_string(campaign["template"]).render(**_group_context(today)).strip()
        source = f"campaign:{campaign['id']}"
        limit = self.policy.cap.limit_at(now)
        calls = []
        with self._session() as s:
            self._lock_ledger(s)
            done = set(
                s.execute(
                    select(CampaignRecipient.target).where(
                        CampaignRecipient.campaign_id == campaign["id"]
                    )
                ).scalars()
            )
            rows = [(a, c) for a, c in self._group_rows(campaign) if c not in done]
            caps = aud.cap_counts(
                self.engine,
                self.policy,
                now,
                [aud.group_target(c) for _, c in rows],
                conn=s.connection(),
            )
            by_advisor: dict[str, list[str]] = defaultdict(list)
            for advisor, chat in rows:
                if caps[aud.group_target(chat)] >= limit:
                    s.add(
                        CampaignRecipient(
                            campaign_id=campaign["id"],
                            target=chat,
                            advisor_userid=advisor,
                            status="left_out",
                            reason="over_cap",
                        )
                    )
                else:
                    by_advisor[advisor].append(chat)
            for advisor, chats in by_advisor.items():
                task = CampaignTask(
                    campaign_id=campaign["id"],
                    advisor_userid=advisor,
                    chat_type="group",
                    recipients=len(chats),
                    status="creating",
                )
                s.add(task)
                s.flush()
                for chat in chats:
                    s.add(
                        CampaignRecipient(
                            campaign_id=campaign["id"],
                            target=chat,
                            advisor_userid=advisor,
                            task_id=task.id,
                            text=text,
                            status="pending",
                        )
                    )
                    s.add(MassSend(target=aud.group_target(chat), source=source, sent_at=now))
                calls.append(
                    {
                        "task_id": task.id,
                        "sender": advisor,
                        "text": text,
                        "targets": chats,
                        "ledger": [aud.group_target(c) for c in chats],
                    }
                )
        return calls

    async def _deliver(self, campaign: dict, calls: list[dict]) -> dict:
        totals = {"tasks": 0, "queued": 0, "not_contact": 0, "failed": 0, "unknown": 0}
        if calls and self.wecom is None:
            raise RuntimeError("no WeCom client: cannot send")
        for call in calls:
            if campaign["surface"] == "kf":
                outcome = await self._deliver_kf(campaign, call)
            else:
                outcome = await self._deliver_task(campaign, call)
            for key, value in outcome.items():
                totals[key] += value
        left = await asyncio.to_thread(self._left_out_counts, campaign["id"])
        return {**totals, "left_out": left}

    async def _deliver_task(self, campaign: dict, call: dict) -> dict:
        surface = campaign["surface"]
        try:
            answer = await self.wecom.add_msg_template(
                sender=call["sender"],
                chat_type=surface,
                text=call["text"],
                external_userid=call["targets"] if surface == "single" else None,
                chat_id_list=call["targets"] if surface == "group" else None,
                attachments=campaign["attachments"],
            )
        except TransportError as exc:  # WeCom may have the task: never send it again
            await asyncio.to_thread(self._task_outcome, call, "unknown", None, [], str(exc))
            return {"unknown": len(call["targets"])}
        except WeComAPIError as exc:
            await asyncio.to_thread(
                self._task_outcome,
                call,
                "failed",
                None,
                call["targets"],
                f"{exc.errcode} {exc.errmsg}",
            )
            return {"failed": len(call["targets"])}
        fail = [str(x) for x in answer.get("fail_list") or []]
        await asyncio.to_thread(
            self._task_outcome, call, "created", answer.get("msgid"), fail, None
        )
        return {"tasks": 1, "queued": len(call["targets"]) - len(fail), "not_contact": len(fail)}

    async def _deliver_kf(self, campaign: dict, call: dict) -> dict:
        outcome = {"queued": 0, "failed": 0}
        sent, refused = [], []
        for target in call["targets"]:
            result = await self.wecom.kf_text(
                call["sender"],
                target,
                call["text"],
                dedupe_key=f"campaign:{campaign['id']}:{target}",
            )
            (sent if result.ok else refused).append(target)
        await asyncio.to_thread(
            self._task_outcome,
            call,
            "confirmed",
            None,
            refused,
            None,
            fail_status="failed",
            ok_status="sent",
        )
        outcome["queued"], outcome["failed"] = len(sent), len(refused)
        return outcome

    def _task_outcome(
        self,
        call: dict,
        status: str,
        msgid: Optional[str],
        failed: list,
        error: Optional[str],
        *,
        fail_status: Optional[str] = None,
        ok_status: str = "queued",
    ) -> None:
        """Record a task's answer; recipients WeCom refused (or all, on failure) give back their
        cap slot."""
        failed_set = set(failed)
        with self._session() as s:
            task = s.get(CampaignTask, call["task_id"])
            task.status, task.msgid, task.error = status, msgid, error
            rows = (
                s.execute(select(CampaignRecipient).where(CampaignRecipient.task_id == task.id))
                .scalars()
                .all()
            )
            release = []
            for row in rows:
                if status == "unknown":
                    row.status = "unknown"
                elif status == "failed":
                    row.status, row.reason = "failed", (error or "")[:32]
                    release.append(row)
                elif row.target in failed_set:
                    row.status = fail_status or "not_contact"
                    release.append(row)
                else:
                    row.status = ok_status
            # The refused recipients' row ids, not their WeCom ids: nothing personal outlives
            # a guest's erasure here (their recipient rows go with them).
            task.fail_list = [row.id for row in rows if row.target in failed_set]
            source = f"campaign:{task.campaign_id}"
            for row in release:
                target = (
                    aud.guest_target(row.guest_id)
                    if row.guest_id is not None
                    else aud.group_target(row.target)
                )
                slot = s.execute(
                    select(MassSend.id)
                    .where(MassSend.target == target, MassSend.source == source)
                    .limit(1)
                ).scalar()
                if slot is not None:
                    s.execute(delete(MassSend).where(MassSend.id == slot))

    def _left_out_counts(self, campaign_id: int) -> dict:
        with self._session() as s:
            rows = s.execute(
                select(CampaignRecipient.reason, func.count())
                .where(
                    CampaignRecipient.campaign_id == campaign_id,
                    CampaignRecipient.status == "left_out",
                )
                .group_by(CampaignRecipient.reason)
            )
            return {reason: count for reason, count in rows}

    # ---- report ------------------------------------------------------------------------------
    def _tasks(self, campaign_id: int) -> list[CampaignTask]:
        with self._session() as s:
            rows = (
                s.execute(
                    select(CampaignTask)
                    .where(CampaignTask.campaign_id == campaign_id)
                    .order_by(CampaignTask.id)
                )
                .scalars()
                .all()
            )
            s.expunge_all()
            return rows

    async def report(self, campaign_id: int, *, refresh: bool = True) -> dict:
        """Delivery and attribution. `refresh` asks WeCom for the current statuses first."""
        campaign = await asyncio.to_thread(self.get, campaign_id)
        tasks = await asyncio.to_thread(self._tasks, campaign_id)
        listed: Optional[set] = None
        if refresh and self.wecom is not None and campaign["surface"] != "kf":
            listed = await self._listed_msgids(campaign, tasks)
            for task in tasks:
                if not task.msgid or task.status not in ("created", "confirmed"):
                    continue
                for entry in await self.wecom.task(task.msgid):
                    userid = entry.get("userid")
                    confirmed = int(entry.get("status") or 0) == 2
                    results = await self.wecom.send_result(task.msgid, userid)
                    await asyncio.to_thread(self._apply_results, task.id, confirmed, results)
            tasks = await asyncio.to_thread(self._tasks, campaign_id)
        return await asyncio.to_thread(self._report_rows, campaign, tasks, listed)

    async def _listed_msgids(self, campaign: dict, tasks: list[CampaignTask]) -> set:
        created = [t for t in tasks if t.msgid]
        if not created:
            return set()
        # The window is WeCom's longest (one month) from the first task, as both sides stamped
        # it: capping it at the service clock broke whenever that clock lagged the database's.
        start = int(min(_aware(t.created_at) for t in created).timestamp()) - 60
        end = start + 30 * 86400
        found = await self.wecom.list_v2(
            chat_type=campaign["surface"], start_time=start, end_time=end
        )
        return {row.get("msgid") for row in found}

    def _apply_results(self, task_id: int, confirmed: bool, results: list[dict]) -> None:
        by_target = {}
        for r in results:
            by_target[r.get("external_userid") or r.get("chat_id")] = int(r.get("status") or 0)
        with self._session() as s:
            task = s.get(CampaignTask, task_id)
            if confirmed and task.status == "created":
                task.status = "confirmed"
            for row in s.execute(
                select(CampaignRecipient).where(CampaignRecipient.task_id == task_id)
            ).scalars():
                if row.target in by_target and row.status not in ("cancelled", "failed"):
                    row.status = RESULT_STATUS.get(by_target[row.target], "failed")

    def _report_rows(self, campaign: dict, tasks, listed) -> dict:
        with self._session() as s:
            counts = {
                status: n
                for status, n in s.execute(
                    select(CampaignRecipient.status, func.count())
                    .where(CampaignRecipient.campaign_id == campaign["id"])
                    .group_by(CampaignRecipient.status)
                )
            }
            reasons = {
                r: n
                for r, n in s.execute(
                    select(CampaignRecipient.reason, func.count())
                    .where(
                        CampaignRecipient.campaign_id == campaign["id"],
                        CampaignRecipient.status == "left_out",
                    )
                    .group_by(CampaignRecipient.reason)
                )
            }
            attribution = self._attribution(s, campaign)
        task_rows = []
        advisors: dict[str, dict] = {}
        for t in tasks:
            confirmed = t.status == "confirmed"
            task_rows.append(
                {
                    "task": t.id,
                    "advisor": t.advisor_userid,
                    "msgid": t.msgid,
                    "status": t.status,
                    "recipients": t.recipients,
                    "confirmed": confirmed,
                    "listed_by_wecom": (t.msgid in listed)
                    if listed is not None and t.msgid
                    else None,
                    "reminders_today": t.reminders,
                    "fail_list": t.fail_list,
                    "error": t.error,
                }
            )
            if t.status in ("created", "confirmed"):
                who = advisors.setdefault(t.advisor_userid, {"tasks": 0, "confirmed": 0})
                who["tasks"] += 1
                who["confirmed"] += confirmed
        for who in advisors.values():
            who["all_confirmed"] = who["tasks"] == who["confirmed"]
        return {
            "campaign": campaign["id"],
            "name": campaign["name"],
            "status": campaign["status"],
            "sent_at": campaign["sent_at"],
            "recipients": counts,
            "left_out": reasons,
            "advisors": advisors,
            "tasks": task_rows,
            "attribution": attribution,
        }

    def _attribution(self, s, campaign: dict) -> dict:
        """Replies (messages the guest sent) and add-on orders within the attribution window
        after the campaign went out, from recipients who got it."""
        if not campaign["sent_at"]:
            return {"days": self.policy.attribution_days, "replies": 0, "orders": 0}
        start = dt.datetime.fromisoformat(campaign["sent_at"])
        end = start + dt.timedelta(days=self.policy.attribution_days)
        guests = select(CampaignRecipient.guest_id).where(
            CampaignRecipient.campaign_id == campaign["id"],
            CampaignRecipient.status.in_(("sent", "queued")),
            CampaignRecipient.guest_id.isnot(None),
        )
        orders = s.execute(
            select(func.count())
            .select_from(cm.Order)
            .where(
                cm.Order.guest_id.in_(guests),
                cm.Order.created_at >= start,
                cm.Order.created_at < end,
            )
        ).scalar()
        replies = 0
        try:
            from bot.wecom.models import InboxMessage

            senders = select(cm.Guest.sender_id).where(cm.Guest.id.in_(guests))
            replies = s.execute(
                select(func.count(func.distinct(InboxMessage.sender_id))).where(
                    InboxMessage.sender_id.in_(senders),
                    InboxMessage.received_at >= start,
                    InboxMessage.received_at < end,
                )
            ).scalar()
        except Exception as exc:  # no inbox table (a CRM-only database): say 0, log why
            log.warning("campaign #%s: replies not counted: %s", campaign["id"], exc)
        return {"days": self.policy.attribution_days, "replies": replies, "orders": orders}

    # ---- cancel / remind -----------------------------------------------------------------------
    async def cancel(self, campaign_id: int, *, actor: str) -> dict:
        """A scheduled campaign is simply stopped; a sent one has its unconfirmed tasks cancelled
        in WeCom and the guests who will not get it their cap slot back."""
        campaign = await asyncio.to_thread(self.get, campaign_id)
        if campaign["status"] == "cancelled":
            return {"campaign": campaign_id, "cancelled": False, "why": "already cancelled"}
        stopped = await asyncio.to_thread(self._cancel_scheduled, campaign_id, actor)
        if stopped:
            return {"campaign": campaign_id, "cancelled": True, "tasks_cancelled": 0}
        if campaign["status"] == "sending":
            return {
                "campaign": campaign_id,
                "cancelled": False,
                "why": "being sent right now: cancel again when it has been sent",
            }
        await self.report(campaign_id)  # the current confirmations first
        cancelled, errors = 0, []
        for task in await asyncio.to_thread(self._tasks, campaign_id):
            if task.status != "created" or not task.msgid:
                continue
            try:
                await self.wecom.cancel(task.msgid)
            except (TransportError, WeComAPIError) as exc:
                errors.append(f"task {task.id}: {exc}")
                continue
            await asyncio.to_thread(self._cancel_task, task.id)
            cancelled += 1
        await asyncio.to_thread(self._mark_cancelled, campaign_id, actor)
        return {
            "campaign": campaign_id,
            "cancelled": True,
            "tasks_cancelled": cancelled,
            "errors": errors,
        }

    def _cancel_scheduled(self, campaign_id: int, actor: str) -> bool:
        with self._session() as s:
            n = s.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status == "scheduled")
                .values(status="cancelled", cancelled_at=self.clock())
                .execution_options(synchronize_session=False)
            ).rowcount
            if n:
                s.add(
                    cm.AuditLog(
                        actor=actor,
                        action="campaign.cancel",
                        subject_type="campaign",
                        subject_id=str(campaign_id),
                        detail={"was": "scheduled"},
                    )
                )
            return n == 1

    def _cancel_task(self, task_id: int) -> None:
        with self._session() as s:
            task = s.get(CampaignTask, task_id)
            task.status = "cancelled"
            source = f"campaign:{task.campaign_id}"
            for row in s.execute(
                select(CampaignRecipient).where(
                    CampaignRecipient.task_id == task_id, CampaignRecipient.status == "queued"
                )
            ).scalars():
                row.status = "cancelled"
                target = (
                    aud.guest_target(row.guest_id)
                    if row.guest_id is not None
                    else aud.group_target(row.target)
                )
                slot = s.execute(
                    select(MassSend.id)
                    .where(MassSend.target == target, MassSend.source == source)
                    .limit(1)
                ).scalar()
                if slot is not None:
                    s.execute(delete(MassSend).where(MassSend.id == slot))

    def _mark_cancelled(self, campaign_id: int, actor: str) -> None:
        with self._session() as s:
            row = s.get(Campaign, campaign_id)
            row.status, row.cancelled_at = "cancelled", self.clock()
            s.add(
                cm.AuditLog(
                    actor=actor,
                    action="campaign.cancel",
                    subject_type="campaign",
                    subject_id=str(campaign_id),
                    detail={"was": "sent"},
                )
            )

    async def remind(self, campaign_id: int) -> dict:
        """Remind advisors who have not confirmed; at most MAX_REMINDS_PER_DAY per task a day."""
        await self.report(campaign_id)
        today = self._today(self.clock()).isoformat()
        reminded, skipped = [], []
        for task in await asyncio.to_thread(self._tasks, campaign_id):
            if task.status != "created" or not task.msgid:
                continue
            used = task.reminders if task.reminders_day == today else 0
            if used >= MAX_REMINDS_PER_DAY:
                skipped.append(
                    {
                        "task": task.id,
                        "advisor": task.advisor_userid,
                        "why": f"{MAX_REMINDS_PER_DAY} reminders today already",
                    }
                )
                continue
            try:
                await self.wecom.remind(task.msgid)
            except (TransportError, WeComAPIError) as exc:
                skipped.append({"task": task.id, "advisor": task.advisor_userid, "why": str(exc)})
                continue
            await asyncio.to_thread(self._count_reminder, task.id, today, used + 1)
            reminded.append({"task": task.id, "advisor": task.advisor_userid})
        return {"campaign": campaign_id, "reminded": reminded, "skipped": skipped}

    def _count_reminder(self, task_id: int, day: str, count: int) -> None:
        with self._session() as s:
            task = s.get(CampaignTask, task_id)
            task.reminders_day, task.reminders = day, count


def _group_context(today: dt.date) -> dict:
    """Group messages have no single guest: the template sees neutral values."""
    return {
        "name": "各位",
        "tier": "",
        "points": 0,
        "next_stay": None,
        "last_stay": None,
        "tags": [],
        "stays": 0,
        "today": today,
    }


def _count(items) -> dict:
    counts: dict = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def _not_claimed_why(campaign: dict, now: dt.datetime) -> str:
    status = campaign["status"]
    if status == "scheduled":
        return f"scheduled for {campaign['scheduled_at']}"
    if status == "sending":
        return "another worker is sending it"
    return f"already {status}"

"""Touchpoints that run by themselves: T-3 before arrival, T+7 after check-out (NPS survey and
repurchase coupon), birthday and anniversary greetings, dormant win-back.

Sequences are data (data/marketing/touchpoints.yml, TOUCHPOINTS_FILE): a default step set and
per-property overrides; marketers switch a step off for one property in `touchpoint_settings`.

Why it is safe to run from several workers and after a restart:
- what is due is derived from the CRM at `now` (bookings, birthdays, last stays), not from a
  timer in memory, so a touchpoint due while the worker was down is found on its next run and
  fires then, late (within the step's `late_days`);
- firing inserts a `touchpoint_runs` row first; `UNIQUE(guest, kind, occasion)` (occasion: the
  booking, the year, the last stay) means a second worker's insert fails and it sends nothing;
  a crash between insert and send leaves the row `sending` and it is not retried (marketing and
  reminders are at-most-once: better missed than sent twice);
- quiet hours (policy) hold everything back until they end; marketing steps need the guest's
  marketing consent and a free cap slot (the same `mass_sends` ledger as campaigns); service
  steps (T-3 practical information, the T+7 survey) do not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select, text as sql_text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.core.errors import DataError
from bot.crm.db import make_session_factory, session_scope
from bot.crm.store import CHINA_TZ
from bot.marketing import audience as aud
from bot.marketing.facts import GuestFacts, load_facts
from bot.marketing.models import MassSend, TouchpointRun, TouchpointSetting
from bot.marketing.policy import MarketingPolicy
from bot.marketing.segments import lifecycle
from bot.marketing.templates import _cn_date
from bot.core.data import read_yaml

log = logging.getLogger(__name__)

KINDS = ("t_minus_3", "t_plus_7", "birthday", "anniversary", "winback")
STEP_KEYS = {"enabled", "marketing", "days", "late_days", "hour", "addon", "coupon"}
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "marketing"
ANNIVERSARY_PURPOSES = ("蜜月", "纪念日")


class TouchpointConfigError(DataError):
    pass


@dataclass(frozen=True)
class Step:
    kind: str
    enabled: bool = True
    marketing: bool = False
    days: int = 0
    late_days: int = 2
    hour: int = 9
    addon: Optional[str] = None
    coupon: Optional[str] = None


@dataclass(frozen=True)
class Sequences:
    default: dict
    properties: dict

    def step(self, property_id: Optional[str], kind: str) -> Step:
        values = {
            **self.default.get(kind, {}),
            **self.properties.get(property_id or "", {}).get(kind, {}),
        }
        return Step(kind=kind, **values)


def _check_step(where: str, kind: str, values: Any) -> dict:
    if kind not in KINDS:
        raise TouchpointConfigError(
            f"{where}: unknown touchpoint {kind!r}; known: " f"{', '.join(KINDS)}"
        )
    if not isinstance(values, dict):
        raise TouchpointConfigError(f"{where}.{kind}: expected a mapping")
    unknown = set(values) - STEP_KEYS
    if unknown:
        raise TouchpointConfigError(f"{where}.{kind}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("days", "late_days", "hour"):
        if key in values and (not isinstance(values[key], int) or values[key] < 0):
            raise TouchpointConfigError(f"{where}.{kind}.{key}: a whole number >= 0")
    if "hour" in values and values["hour"] > 23:
        raise TouchpointConfigError(f"{where}.{kind}.hour: 0-23")
    return dict(values)


def parse_sequences(data: Any, source: str = "(inline)") -> Sequences:
    if not isinstance(data, dict) or not isinstance(data.get("default"), dict):
        raise TouchpointConfigError(f"{source}: needs a `default` mapping of steps")
    unknown = set(data) - {"default", "properties"}
    if unknown:
        raise TouchpointConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    default = {k: _check_step(f"{source}: default", k, v) for k, v in data["default"].items()}
    props = {}
    for prop, steps in (data.get("properties") or {}).items():
        if not isinstance(steps, dict):
            raise TouchpointConfigError(f"{source}: properties.{prop}: expected a mapping")
        props[prop] = {
            k: _check_step(f"{source}: properties.{prop}", k, v) for k, v in steps.items()
        }
    return Sequences(default, props)


def load_sequences(path: Path | str | None = None) -> Sequences:
    if path is None:
        from bot.settings import get_settings

        path = get_settings().touchpoints_file
    return parse_sequences(read_yaml(path, TouchpointConfigError), str(path))


@dataclass
class Due:
    guest: GuestFacts
    kind: str
    occasion: str
    step: Step
    due_at: dt.datetime
    late: bool
    property_id: Optional[str] = None
    booking_id: Optional[int] = None
    context: dict = field(default_factory=dict)


def _local(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=CHINA_TZ).astimezone(dt.timezone.utc)


def _this_year(day: dt.date, year: int) -> dt.date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a common year
        return dt.date(year, 2, 28)


class TouchpointService:
    """`messenger(guest, text, marketing, key)` sends one message and returns (status, channel):
    see `TouchpointMessenger`. `pretrip` is a `bot.pretrip.PreTripService` (the T-3 practical
    part); `catalogue` a `bot.orders.catalogue.Catalogue` (the add-on offer)."""

    def __init__(
        self,
        engine: Engine,
        policy: MarketingPolicy,
        sequences: Sequences,
        *,
        messenger=None,
        pretrip=None,
        catalogue=None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ):
        self.engine = engine
        self.policy = policy
        self.sequences = sequences
        self.messenger = messenger
        self.pretrip = pretrip
        self.catalogue = catalogue
        self.clock = clock
        self._factory = make_session_factory(engine)
        self._env = Environment(
            loader=FileSystemLoader(str(TEMPLATE_DIR)),
            undefined=StrictUndefined,
            autoescape=False,
            lstrip_blocks=True,
            trim_blocks=True,
        )
        self._env.filters["cn_date"] = _cn_date

    def _session(self):
        return session_scope(self._factory)

    # ---- settings (the console's on/off per property) ---------------------------------------
    def set_enabled(self, property_id: str, kind: str, enabled: bool, *, actor: str) -> None:
        if kind not in KINDS:
            raise TouchpointConfigError(f"unknown touchpoint {kind!r}; known: {', '.join(KINDS)}")
        with self._session() as s:
            row = s.get(TouchpointSetting, (property_id, kind))
            if row is None:
                s.add(
                    TouchpointSetting(
                        property_id=property_id, kind=kind, enabled=enabled, updated_by=actor
                    )
                )
            else:
                row.enabled, row.updated_by = enabled, actor

    def overrides(self) -> dict[tuple[str, str], bool]:
        with self._session() as s:
            return {
                (r.property_id, r.kind): r.enabled
                for r in s.execute(select(TouchpointSetting)).scalars()
            }

    def sequence(self, property_id: str) -> list[dict]:
        """The effective steps for one property (file + switches), for the console."""
        over = self.overrides()
        out = []
        for kind in KINDS:
            step = self.sequences.step(property_id, kind)
            enabled = over.get((property_id, kind), step.enabled)
            out.append({**step.__dict__, "enabled": enabled})
        return out

    def _enabled(self, step: Step, property_id: Optional[str], over: dict) -> bool:
        return over.get((property_id or "", step.kind), step.enabled)

    # ---- what is due ----------------------------------------------------------------------------
    def due(self, now: dt.datetime) -> list[Due]:
        today = now.astimezone(CHINA_TZ).date()
        facts = load_facts(self.engine, today)
        over = self.overrides()
        with self._session() as s:
            done = {
                (g, k, o)
                for g, k, o in s.execute(
                    select(TouchpointRun.guest_id, TouchpointRun.kind, TouchpointRun.occasion)
                )
            }
        found: list[Due] = []

        def consider(
            f: GuestFacts,
            kind: str,
            occasion: str,
            day: dt.date,
            prop: Optional[str],
            booking_id: Optional[int] = None,
            until: Optional[dt.date] = None,
            **context: Any,
        ) -> None:
            if (f.id, kind, occasion) in done:
                return
            step = self.sequences.step(prop, kind)
            if not self._enabled(step, prop, over):
                return
            due_at = _local(day, step.hour)
            last_day = day + dt.timedelta(days=step.late_days)
            if until is not None:
                last_day = min(last_day, until)
            if now < due_at or today > last_day:
                return
            found.append(
                Due(
                    f,
                    kind,
                    occasion,
                    step,
                    due_at,
                    late=today > day,
                    property_id=prop,
                    booking_id=booking_id,
                    context=context,
                )
            )

        for f in facts:
            for stay in f.upcoming:
                step = self.sequences.step(stay.property_id, "t_minus_3")
                consider(
                    f,
                    "t_minus_3",
                    str(stay.booking_id),
                    stay.check_in - dt.timedelta(days=step.days),
                    stay.property_id,
                    stay.booking_id,
                    until=stay.check_in - dt.timedelta(days=1),
                )
            for stay in f.stays:
                step = self.sequences.step(stay.property_id, "t_plus_7")
                consider(
                    f,
                    "t_plus_7",
                    str(stay.booking_id),
                    stay.check_out + dt.timedelta(days=step.days),
                    stay.property_id,
                    stay.booking_id,
                    stay=stay,
                )
            home = (
                f.last_stay.property_id
                if f.last_stay
                else (f.next_stay.property_id if f.next_stay else None)
            )
            if f.birthday:
                day = _this_year(f.birthday, today.year)
                if day > today:  # early January: last year's birthday may still be late-due
                    day = _this_year(f.birthday, today.year - 1)
                consider(f, "birthday", str(day.year), day, home)
            anniversary = self._anniversary(f)
            if anniversary:
                day = _this_year(anniversary, today.year)
                if day > today:
                    day = _this_year(anniversary, today.year - 1)
                if day.year > anniversary.year:
                    consider(f, "anniversary", str(day.year), day, home)
            last = f.last_stay
            if last and not f.upcoming and lifecycle(f, today, self.policy) == "dormant":
                consider(
                    f,
                    "winback",
                    f"since:{last.check_out.isoformat()}",
                    last.check_out
                    + dt.timedelta(days=self.policy.dormant_days(last.property_id) + 1),
                    last.property_id,
                    stay=last,
                )
        return found

    @staticmethod
    def _anniversary(f: GuestFacts) -> Optional[dt.date]:
        for category, value in f.tag_pairs:
            if category == "anniversary":
                try:
                    return dt.date.fromisoformat(value if len(value) == 10 else f"2000-{value}")
                except ValueError:
                    continue
        for stay in f.stays:
            if stay.purpose in ANNIVERSARY_PURPOSES:
                return stay.check_in
        return None

    # ---- texts ----------------------------------------------------------------------------------
    def _coupon(self, step: Step, f: GuestFacts) -> Optional[dict]:
        if not step.coupon or f.marketing_consent is not True:
            return None  # a coupon is marketing: only with consent
        return self.policy.coupons.get(step.coupon)

    def _property_name(self, property_id: Optional[str]) -> str:
        kb = getattr(self.pretrip, "kb", None)
        prop = kb.property(property_id) if kb and property_id else None
        return prop.name if prop else "我们酒店"

    def text(self, item: Due, today: dt.date) -> str:
        f, step = item.guest, item.step
        name = f.name or "您"
        if item.kind == "t_minus_3":
            booking = self.pretrip.store.booking(item.booking_id)
            offer = None
            if step.addon and self.catalogue is not None:
                offer = self.catalogue.offer(booking.property_id, step.addon)
            return self._render(
                "t_minus_3", reminder=self.pretrip.reminder(booking, today), offer=offer
            )
        if item.kind == "t_plus_7":
            stay = item.context["stay"]
            return self._render(
                "t_plus_7",
                name=name,
                check_out=stay.check_out,
                property=self._property_name(stay.property_id),
                coupon=self._coupon(step, f),
            )
        if item.kind == "winback":
            stay = item.context["stay"]
            return self._render(
                "winback",
                name=name,
                last_check_out=stay.check_out,
                property=self._property_name(stay.property_id),
                coupon=self._coupon(step, f),
            )
        return self._render(item.kind, name=name, coupon=self._coupon(step, f))

    def _render(self, template: str, **context: Any) -> str:
        text = self._env.get_template(f"{template}.j2").render(**context)
        return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())

    # ---- firing ---------------------------------------------------------------------------------
    def _begin(self, item: Due, now: dt.datetime) -> tuple[Optional[int], Optional[str]]:
        """Insert the run (and for marketing, take a cap slot). (run id, None) to go on, or
        (None, why not)."""
        try:
            with self._session() as s:
                if item.step.marketing:
                    if s.bind.dialect.name == "postgresql":
                        s.execute(
                            sql_text(
                                "SELECT pg_advisory_xact_lock(hashtext('concierge.mass_sends'))"
                            )
                        )
                    target = aud.guest_target(item.guest.id)
                    used = aud.cap_counts(
                        self.engine, self.policy, now, [target], conn=s.connection()
                    )[target]
                    if used >= self.policy.cap.limit_at(now):
                        return None, "over_cap"
                    s.add(MassSend(target=target, source=f"touchpoint:{item.kind}", sent_at=now))
                run = TouchpointRun(
                    guest_id=item.guest.id,
                    booking_id=item.booking_id,
                    kind=item.kind,
                    occasion=item.occasion,
                    status="sending",
                    due_at=item.due_at,
                    fired_at=now,
                    late=item.late,
                )
                s.add(run)
                s.flush()
                return run.id, None
        except IntegrityError:
            return None, "already_fired"

    def _end(
        self,
        run_id: int,
        status: str,
        channel: Optional[str],
        reason: Optional[str],
        text: Optional[str],
    ) -> None:
        with self._session() as s:
            run = s.get(TouchpointRun, run_id)
            run.status, run.channel, run.reason, run.text = status, channel, reason, text

    async def run(self, *, now: Optional[dt.datetime] = None, dry_run: bool = False) -> dict:
        """Fire everything due at `now` (default: the clock). `dry_run`: say what would fire."""
        now = now or self.clock()
        today = now.astimezone(CHINA_TZ).date()
        items = await asyncio.to_thread(self.due, now)
        report: dict[str, Any] = {
            "now": now.isoformat(),
            "dry_run": dry_run,
            "due": len(items),
            "sent": [],
            "skipped": [],
            "deferred": [],
        }
        quiet = self.policy.in_quiet_hours(now)
        for item in items:
            entry = {
                "sender_id": item.guest.sender_id,
                "kind": item.kind,
                "occasion": item.occasion,
                "late": item.late,
            }
            if item.step.marketing and item.guest.marketing_consent is not True:
                report["skipped"].append({**entry, "reason": "no_consent"})
                continue
            if quiet:
                report["deferred"].append(
                    {**entry, "until": self.policy.quiet_ends(now).isoformat()}
                )
                continue
            try:
                text = await asyncio.to_thread(self.text, item, today)
            except Exception as exc:
                log.exception("touchpoint %s for %s: text failed", item.kind, item.guest.sender_id)
                report["skipped"].append({**entry, "reason": f"text failed: {exc}"})
                continue
            if dry_run:
                report["sent"].append({**entry, "text": text, "would_send": True})
                continue
            run_id, why = await asyncio.to_thread(self._begin, item, now)
            if run_id is None:
                report["skipped"].append({**entry, "reason": why})
                continue
            try:
                status, channel = await self.messenger(
                    item.guest,
                    text,
                    marketing=item.step.marketing,
                    key=f"touchpoint:{item.kind}:{item.guest.id}:{item.occasion}",
                )
            except Exception as exc:
                log.exception("touchpoint %s for %s failed", item.kind, item.guest.sender_id)
                status, channel = "failed", None
                entry["error"] = str(exc)[:200]
            reason = None if status in ("sent", "queued") else status
            await asyncio.to_thread(
                self._end, run_id, "sent" if reason is None else "failed", channel, reason, text
            )
            if reason is None:
                report["sent"].append({**entry, "channel": channel, "status": status, "text": text})
            else:
                report["skipped"].append({**entry, "reason": reason, "channel": channel})
        return report


class TouchpointMessenger:
    """How a touchpoint reaches a guest: 微信客服 while the guest is inside the 48-hour window,
    else a one-customer `add_msg_template` task for the advisor who holds the contact."""

    def __init__(self, engine: Engine, wecom) -> None:
        self.engine = engine
        self.wecom = wecom

    async def __call__(self, guest: GuestFacts, text: str, *, marketing: bool, key: str):
        now = dt.datetime.now(dt.timezone.utc)
        if guest.kf_external_userid and guest.kf_open_kfid:
            windows = await asyncio.to_thread(aud.kf_windows, self.engine, now)
            if (guest.kf_open_kfid, guest.kf_external_userid) in windows:
                result = await self.wecom.kf_text(
                    guest.kf_open_kfid, guest.kf_external_userid, text, dedupe_key=key
                )
                if result.ok:
                    return "sent", "kf"
        if guest.external_userid and guest.owner_userid:
            answer = await self.wecom.add_msg_template(
                sender=guest.owner_userid,
                chat_type="single",
                text=text,
                external_userid=[guest.external_userid],
            )
            if guest.external_userid in (answer.get("fail_list") or []):
                return "not_a_contact", "task"
            return "queued", "task"
        return "no_channel", None

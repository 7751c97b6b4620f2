"""Load the demo guests of `data/demo/demo.yml` into the CRM (`concierge demo load`).

Why it works the way it does:
- Dates in the file are day offsets from "today" (in China) so the demo stays are always
  upcoming; loading again moves them to the new today.
- Idempotent: guests are matched by sender_id, bookings by confirmation_no, orders by
  (booking, item); consents get a new row only when the decision in
  force differs (the consent table is an append-only history).
- Everything it writes is marked `is_demo` and it refuses to run with CONCIERGE_ENV=production.
- It writes through the ORM in one transaction (all or nothing), not through CRMStore, because an
  upsert of fixed records is a different job from the store's guest-facing operations.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.bookings.phone import phone_index
from bot.core.data import read_yaml
from bot.core.errors import DataError
from bot.crm import models as m
from bot.crm.db import EngineOrUrl, as_engine, make_session_factory, session_scope
from bot.crm.runtime import is_production
from bot.crm.errors import guarded
from bot.crm.store import CHINA_TZ, china_today
from bot.bookings.facts import refresh_facts
from bot.settings import PROJECT_ROOT

DEMO_FILE = PROJECT_ROOT / "data" / "demo" / "demo.yml"
IDENTITY_KEYS = ("kf_open_kfid", "kf_external_userid", "wecom_external_userid", "unionid")


class DemoRefused(RuntimeError):
    """Demo data must never be mixed into a production CRM."""


@dataclass(frozen=True)
class DemoSummary:
    guests: int
    bookings: int
    orders: int
    created: int  # rows inserted by this load (0 on a reload)
    today: dt.date


class DemoDataError(DataError):
    """The demo file is not valid (the message names the file)."""


def read_demo_file(path: Path | str = DEMO_FILE) -> list[dict]:
    data = read_yaml(path, DemoDataError) or {}
    guests = data.get("guests") if isinstance(data, dict) else None
    if not isinstance(guests, list):
        raise DemoDataError(f"{path}: expected a top-level 'guests' list")
    return guests


@guarded  # an unreachable or unmigrated database raises StoreUnavailable, as in the store
def load_demo(
    engine_or_url: EngineOrUrl = None, *, path: Path | str = DEMO_FILE, today: dt.date | None = None
) -> DemoSummary:
    """Insert or refresh the demo guests; the schema must be migrated (`bot.crm.db.upgrade`)."""
    if is_production():
        raise DemoRefused("refusing to load demo data: CONCIERGE_ENV=production")
    today = today or china_today()
    guests = read_demo_file(path)
    engine = as_engine(engine_or_url)
    loader = _Loader(today)
    try:
        with session_scope(make_session_factory(engine)) as session:
            for spec in guests:
                loader.guest(session, spec)
            refresh_facts(session, loader.guest_ids, as_of=today)
    finally:
        if engine is not engine_or_url:  # we built it from a URL: release its connections
            engine.dispose()
    return DemoSummary(
        guests=loader.guests,
        bookings=loader.bookings,
        orders=loader.orders,
        created=loader.created,
        today=today,
    )


class _Loader:
    """Upserts one guest spec at a time and counts what it touched."""

    def __init__(self, today: dt.date):
        self.today = today
        self.guests = self.bookings = self.orders = self.created = 0
        self.guest_ids: list[int] = []

    def _day(self, offset: Any) -> dt.date:
        return self.today + dt.timedelta(days=int(offset))

    def _upsert(self, session, model, where: dict, values: dict):
        row = session.execute(select(model).filter_by(**where)).scalar_one_or_none()
        if row is None:
            row = model(**where)
            session.add(row)
            self.created += 1
        for key, value in values.items():
            setattr(row, key, value)
        session.flush()
        return row

    def guest(self, session, spec: dict) -> None:
        existing = session.execute(
            select(m.Guest).where(m.Guest.sender_id == spec["sender_id"])
        ).scalar_one_or_none()
        if existing is not None and not existing.is_demo:
            raise DemoRefused(
                f"guest {spec['sender_id']!r} exists and is not demo data: not touching it"
            )
        guest = self._upsert(
            session,
            m.Guest,
            {"sender_id": spec["sender_id"]},
            {
                "display_name": spec.get("name"),
                "tier": spec.get("tier", "普通"),
                "phone": spec.get("phone"),
                "phone_index": phone_index(spec.get("phone")),
                "birthday": spec.get("birthday"),
                "owner_userid": spec.get("owner_userid"),
                "points": int(spec.get("points", 0)),
                # WeCom identities, for the guests the sandbox page chats as.
                **{key: spec[key] for key in IDENTITY_KEYS if spec.get(key)},
                "is_demo": True,
            },
        )
        self.guests += 1
        self.guest_ids.append(guest.id)
        for booking_spec in spec.get("bookings", []):
            self.booking(session, guest, booking_spec)
        for consent in spec.get("consents", []):
            self.consent(session, guest, consent)

    def booking(self, session, guest: m.Guest, spec: dict) -> None:
        existing = session.execute(
            select(m.Booking).where(m.Booking.confirmation_no == spec["confirmation_no"])
        ).scalar_one_or_none()
        if existing is not None and existing.guest_id != guest.id:
            raise DemoRefused(f"booking {spec['confirmation_no']} belongs to another guest")
        booking = self._upsert(
            session,
            m.Booking,
            {"confirmation_no": spec["confirmation_no"]},
            {
                "guest_id": guest.id,
                "property_id": spec["property_id"],
                "city": spec.get("city"),
                "check_in": self._day(spec["check_in"]),
                "check_out": self._day(spec["check_out"]),
                "room_type": spec.get("room_type"),
                "purpose": spec.get("purpose"),
                "party_size": spec.get("party_size", 1),
                "status": spec.get("status", "booked"),
            },
        )
        self.bookings += 1
        for order in spec.get("orders", []):
            scheduled_at = None
            if "scheduled_day" in order:
                hour, minute = (
                    int(x) for x in str(order.get("scheduled_time", "12:00")).split(":")
                )
                local = dt.datetime.combine(
                    self._day(order["scheduled_day"]), dt.time(hour, minute), tzinfo=CHINA_TZ
                )
                scheduled_at = local.astimezone(dt.timezone.utc)
            self._upsert(
                session,
                m.Order,
                {"booking_id": booking.id, "item": order["item"]},
                {
                    "guest_id": guest.id,
                    "property_id": booking.property_id,
                    "scheduled_at": scheduled_at,
                    "party_size": order.get("party_size"),
                    "flight_no": order.get("flight_no"),
                    "notes": order.get("notes"),
                    "status": order.get("status", "requested"),
                    "sla_class": order.get("sla_class"),
                },
            )
            self.orders += 1

    def consent(self, session, guest: m.Guest, spec: dict) -> None:
        latest = session.execute(
            select(m.Consent)
            .where(m.Consent.guest_id == guest.id, m.Consent.purpose == spec["purpose"])
            .order_by(m.Consent.created_at.desc(), m.Consent.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        granted = bool(spec.get("granted", True))
        if latest is None or latest.granted != granted:
            session.add(
                m.Consent(
                    guest_id=guest.id,
                    purpose=spec["purpose"],
                    granted=granted,
                    source=spec.get("source", "demo"),
                )
            )
            self.created += 1

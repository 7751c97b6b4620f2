"""Upserting checked booking rows (`bot.bookings.rows.BookingRow`) into the CRM.

Used by the file importer and by the PMS sync endpoint. Why it works this way:
- **Keyed by (property, confirmation no).** New key: the booking is created; same key with the
  same content (`content_hash`): unchanged, nothing is written (a re-import reads one indexed
  column per row and writes nothing, which is why it is much faster than the first import);
  otherwise updated. With a `version` (sync), a row older than or equal to the stored version
  is `stale` and ignored, so replays and out-of-order pushes change nothing.
- **Guests matched by phone.** The phone is stored encrypted, so guests are found by
  `guests.phone_index` (a keyed digest of the normalised number) and created with the phone
  encrypted when no guest has it. A row's tier overwrites the guest's (the PMS is the source of
  the membership level); its name and birthday only fill blanks (the guest's own word wins).
- **Never half-written.** A batch is one transaction. If the database refuses it (a concurrent
  writer took a key, a constraint), the batch is rolled back and redone one row per transaction,
  so only the failing row is rejected, with the database's reason.
- **Facts kept current.** The profile facts (`bot.bookings.facts`) of every guest a batch
  touched are recomputed in the same transaction.
- **Changes reported.** A booking that was cancelled or whose dates moved is returned as a
  `BookingChange`, for `bot.bookings.replan` to act on after the commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from bot.bookings.facts import refresh_facts
from bot.bookings.phone import phone_index
from bot.bookings.rows import BookingRow
from bot.crm import models as m
from bot.crm.db import EngineOrUrl, as_engine, make_session_factory

log = logging.getLogger(__name__)

OUTCOMES = ("created", "updated", "unchanged", "stale")


@dataclass(frozen=True)
class BookingChange:
    """A booking that matters to what depends on it: cancelled, or its dates moved."""

    booking_id: int
    guest_id: int
    kind: str  # "cancelled" | "moved"
    old_check_in: dt.date
    old_check_out: dt.date
    check_in: dt.date
    check_out: dt.date


@dataclass
class WriteResult:
    outcomes: dict[int, str] = field(default_factory=dict)  # row number -> OUTCOMES
    rejected: dict[int, str] = field(default_factory=dict)  # row number -> reason
    changes: list[BookingChange] = field(default_factory=list)
    booking_ids: dict[int, int] = field(default_factory=dict)  # row number -> booking id

    def merge(self, other: "WriteResult") -> None:
        self.outcomes.update(other.outcomes)
        self.rejected.update(other.rejected)
        self.changes.extend(other.changes)
        self.booking_ids.update(other.booking_ids)


def newer_version(incoming: str | None, stored: str | None) -> bool:
    """Is `incoming` newer than `stored`? Numbers compare as numbers, anything else (ISO
    timestamps) as text; a side without a version never blocks a write."""
    if not incoming or not stored:
        return True
    if incoming.isdigit() and stored.isdigit():
        return int(incoming) > int(stored)
    return incoming > stored


class BookingWriter:
    def __init__(self, engine_or_url: EngineOrUrl = None, *, source: str = "import"):
        self.engine = as_engine(engine_or_url)
        self._factory = make_session_factory(self.engine)
        self.source = source

    def write(
        self,
        rows: Sequence[tuple[int, BookingRow]],
        *,
        dry_run: bool = False,
        as_of: dt.date | None = None,
    ) -> WriteResult:
        """Upsert `rows` (row number, row) in one transaction (rolled back when `dry_run`);
        on a database refusal, one transaction per row."""
        if not rows:
            return WriteResult()
        try:
            return self._transaction(rows, dry_run=dry_run, as_of=as_of)
        except (IntegrityError, DBAPIError) as exc:
            if len(rows) == 1:
                result = WriteResult()
                result.rejected[rows[0][0]] = f"could not be stored: {_short(exc)}"
                return result
            log.warning("booking batch refused (%s): retrying row by row", _short(exc))
        result = WriteResult()
        for item in rows:
            result.merge(self.write([item], dry_run=dry_run, as_of=as_of))
        return result

    def _transaction(self, rows, *, dry_run, as_of) -> WriteResult:
        session: Session = self._factory()
        try:
            result = self._apply(session, rows, as_of=as_of)
            if dry_run:
                session.rollback()
            else:
                session.commit()
            return result
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _apply(
        self, s: Session, rows: Sequence[tuple[int, BookingRow]], *, as_of: dt.date | None
    ) -> WriteResult:
        result = WriteResult()
        existing = self._existing(s, (row for _, row in rows))
        pending: list[tuple[int, BookingRow, m.Booking | None]] = []
        hashes = {row_no: row.content_hash() for row_no, row in rows}
        for row_no, row in rows:
            booking = existing.get(row.key)
            if booking is not None and booking.content_hash == hashes[row_no]:
                result.outcomes[row_no] = "unchanged"
                result.booking_ids[row_no] = booking.id
            elif booking is not None and not newer_version(row.version, booking.source_version):
                result.outcomes[row_no] = "stale"
                result.booking_ids[row_no] = booking.id
            else:
                pending.append((row_no, row, booking))
        if not pending:
            return result

        guests = self._guests_by_phone(s, (row.phone for _, row, _ in pending))
        touched: set[int] = set()
        written: list[tuple[int, m.Booking, BookingChange | None]] = []
        for row_no, row, booking in pending:
            guest = guests.get(row.phone)
            if guest is None:
                guest = guests[row.phone] = self._new_guest(s, row)
            else:
                self._update_guest(guest, row)
            change = None
            if booking is None:
                booking = m.Booking(
                    property_id=row.property_id, confirmation_no=row.confirmation_no
                )
                s.add(booking)
                result.outcomes[row_no] = "created"
            else:
                change = _change(booking, row)
                touched.add(booking.guest_id)  # the booking may move to another guest
                result.outcomes[row_no] = "updated"
            booking.guest = guest
            self._fill(booking, row, hashes[row_no])
            written.append((row_no, booking, change))
        s.flush()
        for row_no, booking, change in written:
            result.booking_ids[row_no] = booking.id
            touched.add(booking.guest_id)
            if change is not None:  # said for the guest the booking now belongs to
                result.changes.append(dataclasses.replace(change, guest_id=booking.guest_id))
        refresh_facts(s, touched, as_of=as_of)
        return result

    @staticmethod
    def _existing(s: Session, rows: Iterable[BookingRow]) -> dict[tuple[str, str], m.Booking]:
        by_property: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            by_property[row.property_id].append(row.confirmation_no)
        found: dict[tuple[str, str], m.Booking] = {}
        for property_id, numbers in by_property.items():
            for start in range(0, len(numbers), 500):
                for booking in s.execute(
                    select(m.Booking).where(
                        m.Booking.property_id == property_id,
                        m.Booking.confirmation_no.in_(numbers[start : start + 500]),
                    )
                ).scalars():
                    found[(booking.property_id, booking.confirmation_no)] = booking
        return found

    @staticmethod
    def _guests_by_phone(s: Session, phones: Iterable[str]) -> dict[str, m.Guest]:
        index_of = {phone: phone_index(phone) for phone in set(phones)}
        phone_of = {index: phone for phone, index in index_of.items()}
        found: dict[str, m.Guest] = {}
        indexes = sorted(phone_of)
        for start in range(0, len(indexes), 500):
            stmt = (
                select(m.Guest)
                .where(m.Guest.phone_index.in_(indexes[start : start + 500]))
                .order_by(m.Guest.id.desc())
            )  # several: the oldest profile wins (set last)
            for guest in s.execute(stmt).scalars():
                found[phone_of[guest.phone_index]] = guest
        return found

    def _new_guest(self, s: Session, row: BookingRow) -> m.Guest:
        guest = m.Guest(
            sender_id=f"guest:{uuid.uuid4().hex[:20]}",
            display_name=row.guest_name,
            tier=row.tier or "普通",
            phone=row.phone,
            phone_index=phone_index(row.phone),
            birthday=row.birthday,
        )
        s.add(guest)
        return guest

    @staticmethod
    def _update_guest(guest: m.Guest, row: BookingRow) -> None:
        if row.tier and guest.tier != row.tier:
            guest.tier = row.tier
        if not guest.display_name:
            guest.display_name = row.guest_name
        if row.birthday and guest.birthday is None:
            guest.birthday = row.birthday

    def _fill(self, booking: m.Booking, row: BookingRow, content_hash: str) -> None:
        booking.city = row.city
        booking.check_in = row.check_in
        booking.check_out = row.check_out
        booking.room_type = row.room_type
        booking.party_size = row.party_size
        booking.status = row.status
        booking.channel = row.channel
        booking.amount = row.amount
        booking.notes = row.notes
        booking.source = self.source
        booking.source_version = row.version or booking.source_version
        booking.content_hash = content_hash


def _change(booking: m.Booking, row: BookingRow) -> BookingChange | None:
    old_in, old_out = booking.check_in, booking.check_out
    if row.status == "cancelled" and booking.status != "cancelled":
        kind = "cancelled"
    elif row.status != "cancelled" and (old_in, old_out) != (row.check_in, row.check_out):
        kind = "moved"
    else:
        return None
    return BookingChange(
        booking_id=booking.id,
        guest_id=booking.guest_id,
        kind=kind,
        old_check_in=old_in,
        old_check_out=old_out,
        check_in=row.check_in,
        check_out=row.check_out,
    )


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return text[:200]

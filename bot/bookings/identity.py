"""Which guest profile a WeCom sender is: linking identities, and merging two profiles.

A guest writes from WeCom (a 微信客服 `kf:<external_userid>` sender, a group member
`wecom:<userid>`); their bookings arrive from the PMS under a profile matched by phone. This
module ties the two together, three ways:

- **In conversation** (`IdentityLinker.attempt`): the guest gives a booking number or the phone
  on the booking (the claim), then a second factor we can check (the proof): the phone's last
  four digits for a booking number; a booking number or the check-in date for a phone. Both may
  come in one message. A wrong pair counts a failure; `max_failures` (3) lock linking for that
  sender for `lock_minutes`. Every failure reads the same whether the claim exists or not, so
  the bot never reveals that a phone or booking number is on file before verification.
- **By an advisor** (`IdentityLinker.link`, `concierge guest link`): after they verified the
  guest themselves; audited.
- **From WeCom's data** (`IdentityLinker.auto_link`): an external contact whose remark mobile
  (`follow_user[].remark_mobiles`) or `unionid` matches exactly one profile.

Linking makes the sender id resolve to the profile (`guest_identities`, kind `sender`; the
store's look-ups follow it: `bot.crm.store.guest_is`). If the sender already had a profile of
its own (every WeCom sender gets one on first contact, holding its tags, orders...), that one is
merged into the booking profile, keeping every record: `merge_guests` re-points every row that
references the dropped guest (in any table with a foreign key to `guests.id`, including those
of other packages), drops only exact duplicates (the same tag twice), keeps the dropped sender
id and WeCom ids as identities of the kept profile, and refreshes the profile facts.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, Table, and_, delete, exists, func, inspect, select, update
from sqlalchemy.orm import Session

from bot.bookings.facts import refresh_facts
from bot.bookings.phone import normalize_phone, phone_index
from bot.crm import models as m
from bot.crm.db import EngineOrUrl, as_engine, make_session_factory, session_scope
from bot.crm.errors import GuestNotFound, guarded
from bot.crm.store import guest_is

log = logging.getLogger(__name__)

MAX_FAILURES = 3
LOCK_MINUTES = 30
TIER_ORDER = {t: i for i, t in enumerate(m.TIERS)}

_PHONE = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?!\d)")
_LAST4 = re.compile(
    r"(?:尾号|尾數|尾数|后四位|後四位|后4位|後4位|末四位|末4位|最后四位|最後四位)"
    r"\D{0,4}(\d{4})(?!\d)"
)
_REF_CUE = re.compile(
    r"(?:订单号|訂單號|订单|訂單|确认号|確認號|预订号|預訂號|单号|單號)"
    r"[\s:：是为為]*([A-Za-z0-9][A-Za-z0-9-]{2,31})"
)
_TOKEN = re.compile(r"(?<![A-Za-z0-9-])([A-Za-z0-9][A-Za-z0-9-]{3,31})(?![A-Za-z0-9-])")
_FULL_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_MONTH_DAY = re.compile(r"(\d{1,2})\s*(?:月|/|\.)\s*(\d{1,2})\s*(?:日|号|號)?")


@dataclass(frozen=True)
class Claim:
    kind: str  # "booking" | "phone"
    value: str

    def to_slot(self) -> dict:
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_slot(cls, value: Any) -> "Claim | None":
        if isinstance(value, dict) and value.get("kind") in ("booking", "phone"):
            return cls(value["kind"], str(value.get("value") or ""))
        return None


@dataclass(frozen=True)
class LinkResult:
    outcome: str  # "linked" | "mismatch" | "locked"
    failures_left: int = 0
    locked_until: dt.datetime | None = None
    profile_sender_id: str | None = None


def _clean(text: str | None) -> str:
    return unicodedata.normalize("NFKC", text or "")


def _refs(text: str) -> list[str]:
    """Booking-number-like tokens: 4-32 letters/digits/dashes with at least three digits, not a
    phone, not a date; those after 订单号/确认号 first."""
    text = _PHONE.sub(" ", _FULL_DATE.sub(" ", text))
    cued = [m_.group(1) for m_ in _REF_CUE.finditer(text)]
    tokens = cued + [t for t in _TOKEN.findall(text) if t not in cued]
    return [t for t in dict.fromkeys(tokens) if sum(c.isdigit() for c in t) >= 3]


def parse_claim(text: str | None) -> Claim | None:
    """The phone or booking number the guest gave (a phone wins when both are there: it is the
    stronger claim and the booking number then serves as the proof)."""
    text = _clean(text)
    phone = _PHONE.search(text)
    if phone:
        normal = normalize_phone(phone.group(0))
        if normal:
            return Claim("phone", normal)
    last4 = {m_.group(1) for m_ in _LAST4.finditer(text)}
    refs = [r for r in _refs(text) if r not in last4]
    return Claim("booking", refs[0]) if refs else None


def parse_proof(text: str | None, claim: Claim) -> str | None:
    """The second factor in `text` for this claim: "last4:8000", "ref:C1001" or
    "date:2026-12-05" / "date:--12-05" (no year given)."""
    text = _clean(text)
    if claim.kind == "booking":
        cued = _LAST4.search(text)
        if cued:
            return f"last4:{cued.group(1)}"
        phone = _PHONE.search(text)
        if phone and normalize_phone(phone.group(0)):
            return f"last4:{normalize_phone(phone.group(0))[-4:]}"
        bare = [
            t
            for t in re.findall(r"(?<![A-Za-z0-9])(\d{4})(?![A-Za-z0-9])", text)
            if t != claim.value
        ]
        return f"last4:{bare[0]}" if len(bare) == 1 else None
    refs = [r for r in _refs(text) if r != claim.value]
    full = _FULL_DATE.search(text)
    if full:
        try:
            return "date:" + dt.date(*(int(g) for g in full.groups())).isoformat()
        except ValueError:
            pass
    short = _MONTH_DAY.search(text)
    if short and ("月" in short.group(0) or not refs):
        month, day = int(short.group(1)), int(short.group(2))
        if 1 <= month <= 12 and 1 <= day <= 31:
            return f"date:--{month:02d}-{day:02d}"
    return f"ref:{refs[0]}" if refs else None


class IdentityLinker:
    def __init__(
        self,
        engine_or_url: EngineOrUrl = None,
        *,
        max_failures: int = MAX_FAILURES,
        lock_minutes: int = LOCK_MINUTES,
        now=None,
    ):
        self.engine = as_engine(engine_or_url)
        self._factory = make_session_factory(self.engine)
        self.max_failures = max_failures
        self.lock = dt.timedelta(minutes=lock_minutes)
        self._now = now or m.utcnow

    # ---- state --------------------------------------------------------------------------
    @guarded
    def is_linked(self, sender_id: str) -> bool:
        """Does this sender's profile have bookings (so stay questions can be answered)?"""
        with session_scope(self._factory) as s:
            return bool(
                s.execute(
                    select(m.Booking.id)
                    .join(m.Guest, m.Guest.id == m.Booking.guest_id)
                    .where(guest_is(sender_id))
                    .limit(1)
                ).first()
            )

    @guarded
    def locked_until(self, sender_id: str) -> dt.datetime | None:
        with session_scope(self._factory) as s:
            row = s.get(m.IdentityLinkAttempt, sender_id)
            until = row.locked_until if row else None
            return until if until and until > self._now() else None

    # ---- in conversation ------------------------------------------------------------------
    @guarded
    def attempt(self, sender_id: str, claim: Claim, proof: str) -> LinkResult:
        """Check claim + proof; link on success, count a failure otherwise."""
        now = self._now()
        with session_scope(self._factory) as s:
            state = s.get(m.IdentityLinkAttempt, sender_id, with_for_update=True)
            if state and state.locked_until and state.locked_until > now:
                return LinkResult("locked", locked_until=state.locked_until)
            profile = self._verify(s, claim, proof)
            if profile is not None:
                if state is not None:
                    s.delete(state)
                kept = self._link(
                    s, sender_id, profile, source="conversation", actor=f"guest:{sender_id}"
                )
                return LinkResult("linked", profile_sender_id=kept.sender_id)
            if state is None:
                state = m.IdentityLinkAttempt(sender_id=sender_id, failures=0)
                s.add(state)
            if state.locked_until and state.locked_until <= now:  # an old lock ran out
                state.failures, state.locked_until = 0, None
            state.failures += 1
            if state.failures >= self.max_failures:
                state.locked_until = now + self.lock
                s.add(
                    m.AuditLog(
                        actor=f"guest:{sender_id}",
                        action="identity.link_locked",
                        subject_type="sender",
                        subject_id=sender_id,
                        detail={"failures": state.failures},
                    )
                )
                return LinkResult("locked", locked_until=state.locked_until)
            return LinkResult("mismatch", failures_left=self.max_failures - state.failures)

    def _verify(self, s: Session, claim: Claim, proof: str) -> m.Guest | None:
        kind, _, value = proof.partition(":")
        if claim.kind == "booking":
            if kind != "last4":
                return None
            rows = (
                s.execute(
                    select(m.Booking).where(
                        func.upper(m.Booking.confirmation_no) == claim.value.upper()
                    )
                )
                .scalars()
                .all()
            )
            matches = {
                b.guest_id for b in rows if (b.guest.phone or "")[-4:] == value and b.guest.phone
            }
        else:
            guests = (
                s.execute(select(m.Guest).where(m.Guest.phone_index == phone_index(claim.value)))
                .scalars()
                .all()
            )
            matches = set()
            for guest in guests:
                for booking in guest.bookings:
                    if kind == "ref" and (booking.confirmation_no or "").upper() == value.upper():
                        matches.add(guest.id)
                    elif kind == "date" and (
                        booking.check_in.isoformat() == value
                        or (
                            value.startswith("--") and booking.check_in.strftime("--%m-%d") == value
                        )
                    ):
                        matches.add(guest.id)
        if len(matches) != 1:  # none, or ambiguous: never guess whose profile it is
            return None
        return s.get(m.Guest, matches.pop())

    # ---- by an advisor, or from WeCom's data ----------------------------------------------
    @guarded
    def link(
        self,
        sender_id: str,
        *,
        to_sender: str | None = None,
        phone: str | None = None,
        confirmation_no: str | None = None,
        actor: str,
    ) -> str:
        """Link `sender_id` to the profile named by its sender id, phone or booking number
        (exactly one match required); returns the profile's sender id. Raises GuestNotFound
        or ValueError (ambiguous)."""
        with session_scope(self._factory) as s:
            profile = self._find_profile(
                s, to_sender=to_sender, phone=phone, confirmation_no=confirmation_no
            )
            return self._link(s, sender_id, profile, source=actor, actor=actor).sender_id

    @guarded
    def auto_link(self, sender_id: str, contact: dict) -> str | None:
        """Link from an `externalcontact/get` answer: the unionid, or a remark mobile any
        follower recorded, matching exactly one profile that has bookings. Returns the
        profile's sender id, or None (nothing to link, or more than one candidate)."""
        external = contact.get("external_contact") or {}
        unionid = external.get("unionid")
        phones = {
            normalize_phone(p)
            for f in contact.get("follow_user") or []
            for p in f.get("remark_mobiles") or []
        } - {None}
        with session_scope(self._factory) as s:
            own = s.execute(
                select(m.Guest).where(m.Guest.sender_id == sender_id)
            ).scalar_one_or_none()
            candidates: set[int] = set()
            if unionid:
                candidates |= set(
                    s.execute(
                        select(m.Guest.id).where(m.Guest.unionid == unionid, m.Guest.bookings.any())
                    ).scalars()
                )
            if phones:
                candidates |= set(
                    s.execute(
                        select(m.Guest.id).where(
                            m.Guest.phone_index.in_([phone_index(p) for p in phones]),
                            m.Guest.bookings.any(),
                        )
                    ).scalars()
                )
            candidates.discard(own.id if own else None)
            if len(candidates) != 1:
                if len(candidates) > 1:
                    log.info(
                        "auto-link of %s: %d candidate profiles, left to an advisor",
                        sender_id,
                        len(candidates),
                    )
                return None
            profile = s.get(m.Guest, candidates.pop())
            if unionid and not profile.unionid:
                profile.unionid = unionid
            return self._link(
                s, sender_id, profile, source="externalcontact", actor="system:externalcontact"
            ).sender_id

    @guarded
    def merge(
        self, keep_sender: str, drop_sender: str, *, actor: str, reason: str | None = None
    ) -> dict:
        """Join two profiles of the same person (`concierge guest merge`); returns counts."""
        with session_scope(self._factory) as s:
            keep = self._guest(s, keep_sender)
            drop = self._guest(s, drop_sender)
            if keep.id == drop.id:
                raise ValueError("both sender ids name the same profile")
            return merge_guests(s, keep, drop, actor=actor, reason=reason)

    # ---- helpers --------------------------------------------------------------------------
    @staticmethod
    def _guest(s: Session, sender_id: str) -> m.Guest:
        guest = s.execute(
            select(m.Guest).where(guest_is(sender_id)).order_by(m.Guest.id).limit(1)
        ).scalar_one_or_none()
        if guest is None:
            raise GuestNotFound(sender_id)
        return guest

    def _find_profile(self, s: Session, *, to_sender, phone, confirmation_no) -> m.Guest:
        if sum(x is not None for x in (to_sender, phone, confirmation_no)) != 1:
            raise ValueError("name the profile by exactly one of: sender id, phone, booking")
        if to_sender is not None:
            return self._guest(s, to_sender)
        if phone is not None:
            index = phone_index(phone)
            if index is None:
                raise ValueError(f"{phone!r} is not a mainland mobile number")
            ids = set(s.execute(select(m.Guest.id).where(m.Guest.phone_index == index)).scalars())
            what = f"phone {phone}"
        else:
            ids = set(
                s.execute(
                    select(m.Booking.guest_id).where(
                        func.upper(m.Booking.confirmation_no) == confirmation_no.upper()
                    )
                ).scalars()
            )
            what = f"booking {confirmation_no}"
        if not ids:
            raise GuestNotFound(what)
        if len(ids) > 1:
            raise ValueError(
                f"{what} matches {len(ids)} profiles: merge them first or link by " "sender id"
            )
        return s.get(m.Guest, ids.pop())

    def _link(
        self, s: Session, sender_id: str, profile: m.Guest, *, source: str, actor: str
    ) -> m.Guest:
        own = s.execute(select(m.Guest).where(m.Guest.sender_id == sender_id)).scalar_one_or_none()
        if own is not None and own.id != profile.id:
            merge_guests(s, profile, own, actor=actor, reason=f"linked by {source}")
        elif own is None and profile.sender_id != sender_id:
            _add_identity(s, profile.id, "sender", sender_id, source)
        s.add(
            m.AuditLog(
                actor=actor,
                action="identity.link",
                subject_type="guest",
                subject_id=profile.sender_id,
                detail={"sender_id": sender_id, "source": source},
            )
        )
        s.flush()
        return profile


def _add_identity(s: Session, guest_id: int, kind: str, value: str | None, source: str) -> None:
    if not value:
        return
    found = s.execute(
        select(m.GuestIdentity).where(m.GuestIdentity.kind == kind, m.GuestIdentity.value == value)
    ).scalar_one_or_none()
    if found is None:
        s.add(m.GuestIdentity(guest_id=guest_id, kind=kind, value=value, source=source))
    else:
        found.guest_id = guest_id


def _references(s: Session) -> list[tuple[Table, str]]:
    """(table, column) of every foreign key to guests.id in the database, whichever package
    created the table."""
    conn = s.connection()
    inspector = inspect(conn)
    found = []
    metadata = MetaData()
    for name in inspector.get_table_names():
        for fk in inspector.get_foreign_keys(name):
            if (
                fk.get("referred_table") == "guests"
                and fk.get("referred_columns") == ["id"]
                and len(fk.get("constrained_columns") or []) == 1
            ):
                table = Table(name, metadata, autoload_with=conn)
                found.append((table, fk["constrained_columns"][0]))
    return found


def merge_guests(
    s: Session, keep: m.Guest, drop: m.Guest, *, actor: str, reason: str | None = None
) -> dict:
    """Move everything of `drop` onto `keep` and delete `drop` (inside the caller's
    transaction); returns how many rows each table had re-pointed."""
    moved: dict[str, int] = {}
    s.flush()
    for table, column in _references(s):
        col = table.c[column]
        if table.name == "guest_facts":
            s.execute(delete(table).where(col == drop.id))  # recomputed below
            continue
        # A row that would duplicate one the kept profile has (a unique constraint with the
        # guest column: the same tag twice) is the same fact: the kept one stays.
        for unique in inspect(s.connection()).get_unique_constraints(table.name):
            others = [c for c in unique["column_names"] if c != column]
            if column in unique["column_names"] and others:
                twin = table.alias("twin")
                s.execute(
                    delete(table).where(
                        col == drop.id,
                        exists().where(
                            and_(
                                twin.c[column] == keep.id,
                                *[twin.c[c] == table.c[c] for c in others],
                            )
                        ),
                    )
                )
        result = s.execute(update(table).where(col == drop.id).values({column: keep.id}))
        if result.rowcount:
            moved[table.name] = result.rowcount
    # The dropped profile's ways in become the kept one's.
    _add_identity(s, keep.id, "sender", drop.sender_id, "merge")
    for kind in ("kf_external_userid", "wecom_external_userid", "unionid"):
        value = getattr(drop, kind)
        if value and not getattr(keep, kind):
            setattr(keep, kind, value)
            if kind == "kf_external_userid" and not keep.kf_open_kfid:
                keep.kf_open_kfid = drop.kf_open_kfid
        elif value and value != getattr(keep, kind):
            _add_identity(s, keep.id, kind, value, "merge")
    if drop.phone and not keep.phone:
        keep.phone, keep.phone_index = drop.phone, drop.phone_index
    if drop.birthday and not keep.birthday:
        keep.birthday = drop.birthday
    if not keep.display_name:
        keep.display_name = drop.display_name
    if TIER_ORDER.get(drop.tier, 0) > TIER_ORDER.get(keep.tier, 0):
        keep.tier = drop.tier
    drop_id, drop_sender = drop.id, drop.sender_id
    s.flush()
    s.expunge(drop)
    s.execute(delete(m.Guest).where(m.Guest.id == drop_id))
    refresh_facts(s, [keep.id])
    s.add(
        m.AuditLog(
            actor=actor,
            action="guest.merge",
            subject_type="guest",
            subject_id=keep.sender_id,
            detail={"merged": drop_sender, "reason": reason, "moved": moved},
        )
    )
    return moved

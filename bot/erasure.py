"""Erasing a guest everywhere we hold them (PIPL Art. 47), keeping only a record that we did.

`GuestEraser.erase(sender_id, actor=..., reason=...)` removes, in this order:
1. the guest's WeCom corp tags (`externalcontact/mark_tag` remove, every tag id of the library):
   first, because it needs the external userid that step 2 deletes; if WeCom refuses, nothing
   is deleted and the erasure can simply be run again (`ErasureIncomplete`);
2. the CRM rows: the guest and everything hanging off it (bookings, tags, orders, tickets,
   handoffs, feedback, consents, identities, SLA clocks with their steps and notes, pages), then,
   in every other table with a `sender_id` or `external_userid` column (the WeCom inbox, kf
   quotas, whatever a later feature adds), the rows of the guest's ids;
3. copies of the guest's words in rows that are not theirs: WeCom inbox/outbox rows (a page card
   to an advisor quotes the guest, an advisor's 接管 names them) whose payload contains the
   guest's name, phone, ids or one of their messages;
4. the guest's NLU inbox messages (kept under a keyed hash: bot.training.inbox.erase_sender),
   and Rasa's tracker events of the guest's sender ids (bot.tracker_events);
5. queued spool entries (bot.spool) and Redis keys naming the guest's ids.
The audit log keeps `guest.erase` with the counts and the reason: never the data.

A legal hold (`guests.legal_hold`, `concierge guest hold`) stops the erasure (`LegalHold`).
`auto_erase_due` is what the worker runs: deletion requests not handled within 24 h (SPEC) are
carried out unless the guest is on hold.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Optional, Sequence

from sqlalchemy import MetaData, delete, select

log = logging.getLogger(__name__)

# Tables erased by the guest's row cascade or kept on purpose; the generic sweep skips them.
NEVER_SWEPT = frozenset({"audit_log", "alembic_version"})
ID_COLUMNS = ("sender_id", "external_userid")
# Texts shorter than this are not searched for in other people's rows ("好", "谢谢" are everyone's).
MIN_FINGERPRINT = 4
DELETION_DEADLINE = dt.timedelta(hours=24)
AUTO_ACTOR = "worker:auto-erasure"

MarkTag = Callable[..., Awaitable[Any]]


class LegalHold(RuntimeError):
    """The guest is on legal hold: their data must be kept."""


class ErasureIncomplete(RuntimeError):
    """A store refused (WeCom down, ...): nothing irreversible was done; run it again."""


@dataclass
class ErasureReport:
    sender_id: str
    found: bool
    counts: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"sender_id": self.sender_id, "found": self.found, "erased": self.counts}


@dataclass
class CorpTagRemover:
    """Removes every corp tag of the configured library from an external contact."""

    owner_userid: str
    tag_ids: Sequence[str]
    mark_tag: Optional[MarkTag] = None
    # Runs the coroutine from the calling (worker) thread: asyncio.run by default; a process with
    # its own loop passes one that schedules there (its WeCom client lives on that loop).
    run: Callable[[Any], Any] = asyncio.run

    @classmethod
    def from_file(cls, path: Optional[str], mark_tag: Optional[MarkTag] = None):
        if not path:
            return None
        from bot.wecom.tag_mirror import WeComTagMirror

        mirror = WeComTagMirror.from_file(path)
        ids = sorted({i for names in mirror.tag_ids.values() for i in names.values()})
        return cls(mirror.owner_userid, ids, mark_tag)

    def remove_all(self, external_userid: str) -> None:
        """Blocking (called in a worker thread): raises ErasureIncomplete unless WeCom said ok."""
        mark_tag = self.mark_tag
        if mark_tag is None:
            from bot.wecom.externalcontact import mark_tag
        result = self.run(
            mark_tag(self.owner_userid, external_userid, remove_tag=list(self.tag_ids))
        )
        if not getattr(result, "ok", False):
            raise ErasureIncomplete(
                f"WeCom did not remove the corp tags "
                f"({getattr(result, 'status', result)}); nothing was erased"
            )


class GuestEraser:
    """Collaborators are passed in (the CLI and the worker build them from the settings)."""

    def __init__(
        self,
        crm,
        *,
        tracker=None,
        spools: Sequence = (),
        redis=None,
        tags: Optional[CorpTagRemover] = None,
        inbox_hash_key: Optional[str] = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ):
        self.crm = crm
        self.tracker = tracker
        self.spools = list(spools)
        self.redis = redis
        self.tags = tags
        # the NLU inbox keeps senders only as a keyed hash (bot.training.inbox.erase_sender)
        self.inbox_hash_key = inbox_hash_key
        self.clock = clock

    # ---- what we know of the guest --------------------------------------------------------
    def _fingerprints(self, sender_id: str, guest) -> tuple[list[str], set[str]]:
        """(the guest's ids, the strings whose copies must go)."""
        from bot.guest_export import guest_ids

        ids = guest_ids(sender_id, guest)
        strings: set[str] = set(ids)
        if guest is not None:
            for value in (
                guest.display_name,
                guest.phone,
                guest.id_number,
                guest.passport_number,
                guest.health_notes,
            ):
                if value:
                    strings.add(value)
        texts = self._guest_texts(sender_id, ids)
        strings.update(t for t in texts if t)
        return ids, {s for s in strings if len(s) >= MIN_FINGERPRINT or s in ids}

    def _guest_texts(self, sender_id: str, ids: Sequence[str]) -> list[str]:
        from bot.crm import models as m

        found: list[str] = []
        if self.tracker is not None:
            found += self.tracker.texts(ids)
        with self.crm._session() as s:  # the CRM's own session: decrypted values
            guest = s.execute(select(m.Guest).where(m.Guest.sender_id == sender_id)).scalar()
            if guest is not None:
                gid = guest.id
                for model, column in (
                    (m.PreferenceTag, "source_message"),
                    (m.Ticket, "description"),
                    (m.Order, "notes"),
                    (m.Feedback, "text"),
                ):
                    rows = s.execute(select(model).where(model.guest_id == gid)).scalars()
                    found += [getattr(r, column) for r in rows if getattr(r, column, None)]
                found += self._clock_texts(s, gid)
        return found

    @staticmethod
    def _clock_texts(s, guest_id: int) -> list[str]:
        try:
            from bot.paging import models as pm
        except ImportError:  # pragma: no cover - paging is part of the product
            return []
        found = []
        clocks = s.execute(select(pm.SlaClock).where(pm.SlaClock.guest_id == guest_id)).scalars()
        for clock in clocks:
            found += [clock.summary, clock.resolution]
            notes = s.execute(select(pm.SlaNote).where(pm.SlaNote.clock_id == clock.id)).scalars()
            found += [n.text for n in notes]
        return [t for t in found if t]

    def _paging(self):
        """The paging store (owner of the pages about this guest's cases), on the CRM's engine."""
        from bot.paging.store import PagingStore

        return PagingStore(self.crm.engine)

    # ---- the erasure ------------------------------------------------------------------------
    def erase(
        self, sender_id: str, *, actor: str, reason: str, skip_wecom_tags: bool = False
    ) -> ErasureReport:
        if not actor or not reason:
            raise ValueError("an erasure needs an actor and a reason")
        guest = self.crm.find_guest(sender_id)
        if guest is not None and guest.legal_hold:
            raise LegalHold(f"{sender_id} is on legal hold ({guest.legal_hold}): not erased")
        ids, strings = self._fingerprints(sender_id, guest)
        report = ErasureReport(sender_id, guest is not None)
        external = guest and (guest.wecom_external_userid or guest.kf_external_userid)
        if external and self.tags is not None and not skip_wecom_tags:
            self.tags.remove_all(external)  # raises before anything is deleted
            report.counts["corp_tags"] = len(self.tags.tag_ids)
        if guest is not None:
            report.counts["pages"] = self._paging().forget_guest_pages(guest.id)
            self.crm.delete_guest(sender_id, actor=actor, reason=reason)
            report.counts["guest"] = 1
        report.counts.update(self._sweep_tables(ids, strings))
        if self.inbox_hash_key:
            from bot.training.inbox import erase_sender

            report.counts["nlu_inbox_messages"] = sum(
                erase_sender(self.crm.engine, i, self.inbox_hash_key) for i in ids
            )
        if self.tracker is not None:
            report.counts["tracker_events"] = self.tracker.delete(ids)
        if self.spools:
            report.counts["spool_entries"] = sum(sp.remove_sender(ids) for sp in self.spools)
        if self.redis is not None:
            report.counts["redis_keys"] = self._sweep_redis(ids)
        self.crm.record_audit(
            actor,
            "guest.erase",
            "guest",
            sender_id,
            {
                "reason": reason,
                "erased": report.counts,
                "wecom_tags_skipped": bool(skip_wecom_tags and external),
            },
        )
        log.info("erased guest %s: %s", sender_id, report.counts)
        return report

    def _sweep_tables(self, ids: Sequence[str], strings: set[str]) -> dict:
        counts: dict[str, int] = {}
        engine = self.crm.engine
        meta = MetaData()
        meta.reflect(engine)
        with engine.begin() as conn:
            for table in meta.sorted_tables:
                if table.name in NEVER_SWEPT:
                    continue
                for column in ID_COLUMNS:
                    if column in table.c:
                        n = conn.execute(delete(table).where(table.c[column].in_(ids))).rowcount
                        if n:
                            counts[table.name] = counts.get(table.name, 0) + n
            counts.update(self._sweep_copies(conn, meta, strings))
        return counts

    def _sweep_copies(self, conn, meta: MetaData, strings: set[str]) -> dict:
        """Rows of the WeCom inbox/outbox whose payload quotes the guest (decrypted first)."""
        from bot.wecom import models as wm

        counts: dict[str, int] = {}
        needles = sorted(strings, key=len, reverse=True)
        if not needles:
            return counts
        for model, column in ((wm.InboxMessage, "payload"), (wm.OutboxMessage, "body")):
            table = model.__table__
            if table.name not in meta.tables:
                continue
            doomed = []
            for row in conn.execute(select(table.c.id, table.c[column])):
                text = (
                    json.dumps(row[1], ensure_ascii=False)
                    if not isinstance(row[1], str)
                    else row[1]
                )
                if any(needle in text for needle in needles):
                    doomed.append(row[0])
            for start in range(0, len(doomed), 500):
                conn.execute(delete(table).where(table.c.id.in_(doomed[start : start + 500])))
            if doomed:
                counts[f"{table.name}_copies"] = len(doomed)
        return counts

    def _sweep_redis(self, ids: Iterable[str]) -> int:
        removed = 0
        for value in ids:
            pattern = "*" + "".join(f"[{c}]" if c in "*?[]\\" else c for c in value) + "*"
            keys = list(self.redis.scan_iter(match=pattern, count=500))
            if keys:
                removed += int(self.redis.delete(*keys) or 0)
        return removed


# ---- the 24 h deadline ------------------------------------------------------------------------


def due_deletion_requests(crm, now: dt.datetime) -> list[tuple[str, int]]:
    """(sender_id, ticket id) of open data_deletion tickets older than the deadline, whose
    guest is not on legal hold."""
    from bot.crm import models as m

    cutoff = now - DELETION_DEADLINE
    with crm._session() as s:
        rows = s.execute(
            select(m.Guest.sender_id, m.Ticket.id)
            .join(m.Guest, m.Guest.id == m.Ticket.guest_id)
            .where(
                m.Ticket.kind == "data_deletion",
                m.Ticket.status.in_(("open", "acknowledged")),
                m.Ticket.created_at <= cutoff,
                m.Guest.legal_hold.is_(None),
            )
            .order_by(m.Ticket.created_at)
        ).all()
    return [(sender, ticket) for sender, ticket in rows]


def auto_erase_due(eraser: GuestEraser, now: Optional[dt.datetime] = None) -> list[str]:
    """The worker's job: carry out every deletion request past its deadline. One failing
    erasure (WeCom down) is logged and retried on the next run; the others go ahead."""
    now = now or eraser.clock()
    done = []
    for sender_id, ticket_id in due_deletion_requests(eraser.crm, now):
        try:
            eraser.erase(
                sender_id,
                actor=AUTO_ACTOR,
                reason=f"deletion request #{ticket_id} not handled within 24 h",
            )
            done.append(sender_id)
        except (ErasureIncomplete, LegalHold) as exc:
            log.warning("auto-erasure of deletion request #%s postponed: %s", ticket_id, exc)
        except Exception:
            log.exception("auto-erasure of deletion request #%s failed", ticket_id)
    return done


def build_eraser(crm, settings=None, *, run: Optional[Callable[[Any], Any]] = None) -> GuestEraser:
    """The eraser over every store the settings name (the CLI's and the worker's)."""
    from bot.settings import get_settings
    from bot.spool import DEFAULT_SPOOL_FILE, FileSpool, make_spool
    from bot.tracker_events import TrackerEvents

    settings = settings or get_settings()
    redis = None
    if settings.redis_url:
        import redis as redis_lib

        redis = redis_lib.Redis.from_url(
            settings.redis_url, socket_timeout=3, socket_connect_timeout=3
        )
    spools = [make_spool(settings.redis_url, settings.spool_file)]
    if settings.redis_url:  # entries written while there was no Redis may still wait in the file
        spools.append(FileSpool(settings.spool_file or DEFAULT_SPOOL_FILE))
    tags = CorpTagRemover.from_file(settings.wecom_corp_tags_file)
    if tags is not None and run is not None:
        tags.run = run
    return GuestEraser(
        crm,
        tracker=TrackerEvents(settings.tracker_database_url or None),
        spools=spools,
        redis=redis,
        tags=tags,
        inbox_hash_key=settings.training.hash_key,
    )

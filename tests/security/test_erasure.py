"""bot.erasure / bot.retention / bot.guest_export on real stores (SQLite CRM and tracker, the
file spool, Redis db 15) with a recording WeCom mark_tag."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from bot.audit import Staff
from bot.crm import crypto
from bot.crm.db import make_engine, upgrade
from bot.crm.store import CRMStore
from bot.erasure import (
    CorpTagRemover,
    ErasureIncomplete,
    GuestEraser,
    LegalHold,
    auto_erase_due,
)
from bot.guest_export import export_guest
from bot.retention import run_retention
from bot.settings import get_settings
from bot.spool import FileSpool, new_entry
from bot.tracker_events import TrackerEvents
from bot.wecom.db import Database
from bot.wecom.delivery.inbox import Inbound, Inbox
from bot.wecom.delivery.outbox import Outbox
from tests.conftest import REDIS_TEST_URL, require_service

SENDER, EXTERNAL = "kf:wm_guest_1", "wm_guest_1"
NAME, PHONE = "司马青衫", "13700001111"
SAID = ["我对花生过敏，麻烦备注一下", "空调一直滴水，太影响休息了"]


class Result:
    def __init__(self, ok):
        self.ok, self.status = ok, "sent" if ok else "retry"


class MarkTag:
    def __init__(self, ok=True):
        self.ok, self.calls = ok, []

    async def __call__(self, userid, external_userid, add_tag=(), remove_tag=()):
        self.calls.append((userid, external_userid, list(remove_tag)))
        return Result(self.ok)


@pytest.fixture
def world(monkeypatch, tmp_path):
    monkeypatch.setenv("CRM_ENCRYPTION_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    crypto.reset_for_tests()
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    crm = CRMStore(url)
    crm.get_or_create_guest(SENDER, name=NAME)
    crm.update_guest(SENDER, phone=PHONE, kf_external_userid=EXTERNAL)
    crm.upsert_tag(SENDER, "allergy", "花生", source_message=SAID[0])
    crm.create_ticket(SENDER, kind="complaint", description=SAID[1])
    crm.get_or_create_guest("kf:other", name="别的客人")
    tracker_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    engine = create_engine(tracker_url, future=True)
    with engine.begin() as conn:  # Rasa's SQLTrackerStore table
        conn.execute(
            text(
                "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255), "
                "type_name VARCHAR(255), timestamp FLOAT, intent_name VARCHAR(255), "
                "action_name VARCHAR(255), data TEXT)"
            )
        )
        now = dt.datetime.now(dt.timezone.utc).timestamp()
        for sender, said in ((SENDER, SAID[0]), (SENDER, SAID[1]), ("kf:other", "你好呀朋友们")):
            conn.execute(
                text(
                    "INSERT INTO events (sender_id, type_name, timestamp, data) "
                    "VALUES (:s, 'user', :t, :d)"
                ),
                {"s": sender, "t": now, "d": json.dumps({"text": said})},
            )
    engine.dispose()
    from bot.events.store import EventStore

    events = EventStore(crm.engine)  # the copies the event consumer keeps for the reports
    for sender, said in ((SENDER, SAID[0]), (SENDER, SAID[1]), ("kf:other", "你好呀朋友们")):
        events.record(
            {
                "sender_id": sender,
                "event": "user",
                "timestamp": now,
                "text": said,
                "parse_data": {"text": said, "intent": {"name": "greet"}},
            }
        )
    db = Database(make_engine(url))
    Inbox(db).add_sync(Inbound("k1", "kf", SENDER, "text", {"text": SAID[0]}))
    Outbox(db).begin_sync(
        "app",
        "/cgi-bin/message/send",
        {"text": {"content": f"客人 {NAME}：{SAID[1]}"}},
        "advisor_li",
        "d1",
    )
    Outbox(db).begin_sync(
        "app", "/cgi-bin/message/send", {"text": {"content": "无关"}}, "advisor_li", "d2"
    )
    spool = FileSpool(tmp_path / "spool" / "crm-writes.jsonl")
    spool.append(new_entry("preferences.record", SENDER, {"text": SAID[0]}))
    spool.append(new_entry("preferences.record", "kf:other", {"text": "安静的房间"}))
    tracker = TrackerEvents(tracker_url)
    yield crm, tracker, spool, db, tmp_path
    tracker.close()
    db.engine.dispose()
    crm.close()
    crypto.reset_for_tests()


def readable(value) -> str:
    """A cell as text: decrypted if encrypted, JSON un-escaped (Rasa stores events as
    ASCII-escaped JSON)."""
    text_value = str(value)
    if text_value.startswith("gAAAAA"):  # a Fernet token: scan what it protects
        from bot.crm.crypto import decrypt

        text_value = decrypt(text_value)
    try:
        return json.dumps(json.loads(text_value), ensure_ascii=False)
    except (ValueError, TypeError):
        return text_value


def dump_all(crm, tracker, spool_dir, *, skip=("audit_log",)) -> str:
    parts = []
    for engine in (crm.engine, tracker.engine):
        with engine.connect() as conn:
            tables = [
                r[0]
                for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
            ]
            for table in (t for t in tables if t not in skip):
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    parts += [readable(v) for v in row]
    parts += [p.read_text(encoding="utf-8") for p in spool_dir.glob("*") if p.is_file()]
    return "\n".join(parts)


def test_export_then_erase_everywhere(world):
    crm, tracker, spool, db, tmp = world
    exported = export_guest(crm, SENDER, staff=Staff("cli", "dpo"), tracker=tracker)
    assert exported["profile"]["guest"]["phone"] == PHONE
    assert [e["text"] for e in exported["conversation"]] == SAID
    assert exported["wecom_inbox"][0]["payload"] == {"text": SAID[0]}
    assert crm.audit_entries(action="profile.view")[0].actor == "cli:dpo"

    require_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    key = f"concierge:wecom:rl:kf:{EXTERNAL}:{uuid.uuid4().hex}"
    client.set(key, "1", ex=60)
    mark_tag = MarkTag()
    tags = CorpTagRemover("advisor_zhou", ["et1", "et2"], mark_tag, run=__import__("asyncio").run)
    eraser = GuestEraser(crm, tracker=tracker, spools=[spool], redis=client, tags=tags)
    report = eraser.erase(SENDER, actor="cli:dpo", reason="guest asked")

    assert mark_tag.calls == [("advisor_zhou", EXTERNAL, ["et1", "et2"])]
    assert report.counts["guest"] == 1 and report.counts["tracker_events"] == 2
    assert report.counts["conversation_events"] == 2
    assert report.counts["spool_entries"] == 1 and report.counts["redis_keys"] == 1
    assert report.counts["wecom_inbox"] == 1 and report.counts["wecom_outbox_copies"] >= 1
    everything = dump_all(crm, tracker, spool.path.parent)
    for needle in (NAME, PHONE, *SAID, EXTERNAL):
        assert needle not in everything, needle
    # The audit log keeps that it happened, under the sender id: never the data.
    audit = dump_all(crm, tracker, spool.path.parent, skip=())
    for needle in (NAME, PHONE, *SAID):
        assert needle not in audit, needle
    # other guests and unrelated rows are untouched
    other = crm.find_guest("kf:other")
    assert other.display_name == "别的客人"
    assert "你好呀朋友们" in everything and "无关" in everything and "安静的房间" in everything
    [entry] = crm.audit_entries(action="guest.erase")
    assert entry.actor == "cli:dpo" and entry.detail["reason"] == "guest asked"
    assert client.get(key) is None


def test_wecom_refusing_the_tag_removal_erases_nothing(world):
    crm, tracker, spool, db, tmp = world
    eraser = GuestEraser(
        crm,
        tracker=tracker,
        spools=[spool],
        tags=CorpTagRemover("o", ["et1"], MarkTag(ok=False), run=__import__("asyncio").run),
    )
    with pytest.raises(ErasureIncomplete):
        eraser.erase(SENDER, actor="cli:dpo", reason="asked")
    assert crm.find_guest(SENDER) is not None and len(tracker.texts([SENDER])) == 2
    report = eraser.erase(SENDER, actor="cli:dpo", reason="asked", skip_wecom_tags=True)
    assert report.counts["guest"] == 1 and crm.find_guest(SENDER) is None


def test_legal_hold_blocks_erasure_and_auto_erasure(world):
    crm, tracker, spool, db, tmp = world
    eraser = GuestEraser(crm, tracker=tracker, spools=[spool])
    ticket = crm.create_ticket(SENDER, kind="data_deletion", description="请删除我的资料")
    later = ticket.created_at + dt.timedelta(hours=25)
    crm.set_legal_hold(SENDER, "投诉纠纷处理中", actor="cli:legal")
    with pytest.raises(LegalHold):
        eraser.erase(SENDER, actor="cli:dpo", reason="asked")
    assert auto_erase_due(eraser, later) == []
    crm.set_legal_hold(SENDER, None, actor="cli:legal")
    assert auto_erase_due(eraser, ticket.created_at + dt.timedelta(hours=23)) == []
    assert auto_erase_due(eraser, later) == [SENDER]
    assert crm.find_guest(SENDER) is None
    [entry] = crm.audit_entries(action="guest.erase")
    assert entry.actor == "worker:auto-erasure" and "24 h" in entry.detail["reason"]


def test_retention_drops_old_handled_messages_and_tracker_events(world):
    crm, tracker, spool, db, tmp = world
    with crm.engine.begin() as conn:
        conn.execute(text("UPDATE wecom_inbox SET status = 'done'"))
        conn.execute(text("UPDATE wecom_outbox SET status = 'sent'"))
    now = dt.datetime.now(dt.timezone.utc)
    assert run_retention(crm, tracker, now=now) == {
        "wecom_inbox": 0,
        "wecom_outbox": 0,
        "conversation_events": 0,
        "tracker_events": 0,
    }
    later = now + dt.timedelta(days=200)
    counts = run_retention(crm, tracker, now=later)
    assert counts == {
        "wecom_inbox": 1,
        "wecom_outbox": 2,
        "conversation_events": 3,
        "tracker_events": 3,
    }


def test_erasure_has_the_paging_store_forget_the_guests_pages(world):
    """Pages are the paging store's table: erasure asks it to forget the guest's, and leaves
    other guests' pages alone."""
    from sqlalchemy import func, select

    from bot.crm.db import make_session_factory, session_scope
    from bot.crm.models import Page

    crm, tracker, spool, db, tmp = world
    [ticket] = crm.profile(SENDER)["tickets"]
    other = crm.create_ticket("kf:other", kind="complaint", description="空调不冷")
    factory = make_session_factory(crm.engine)
    with session_scope(factory) as s:
        for subject_id in (ticket["id"], other.id):
            s.add(
                Page(
                    subject_type="ticket",
                    subject_id=subject_id,
                    step="ack",
                    recipient="advisor_li",
                    status="sent",
                    attempt=1,
                )
            )
    report = GuestEraser(crm, tracker=tracker, spools=[spool]).erase(
        SENDER, actor="cli:dpo", reason="guest asked"
    )
    assert report.counts["pages"] == 1
    with session_scope(factory) as s:
        left = s.execute(select(Page.subject_id)).scalars().all()
        assert left == [other.id] and s.execute(select(func.count(Page.id))).scalar() == 1

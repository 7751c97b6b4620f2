"""The SLA worker's privacy loop (bot.paging.runtime._privacy_jobs): a deletion request past its
24 h deadline is carried out, and the retention job runs, on the worker's own schedule."""

from __future__ import annotations

import asyncio
import datetime as dt

from cryptography.fernet import Fernet
from sqlalchemy import text

from bot.crm import crypto
from bot.crm.db import upgrade
from bot.crm.store import CRMStore
from bot.paging import runtime
from bot.settings import get_settings


async def test_overdue_deletion_request_is_erased_by_the_worker(monkeypatch, tmp_path):
    monkeypatch.setenv("CRM_ENCRYPTION_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("TRACKER_DATABASE_URL", f"sqlite:///{tmp_path / 'tracker.db'}")
    monkeypatch.setenv("CONCIERGE_SPOOL_FILE", str(tmp_path / "spool" / "w.jsonl"))
    monkeypatch.delenv("WECOM_CORP_TAGS_FILE", raising=False)
    get_settings.cache_clear()
    crypto.reset_for_tests()
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    crm = CRMStore(url)
    try:
        for sender in ("kf:old-request", "kf:fresh-request"):
            crm.get_or_create_guest(sender, name="请求删除的客人")
            crm.create_ticket(sender, kind="data_deletion", description="请删除我的信息")
        day_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=25)
        with crm.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE tickets SET created_at = :t WHERE guest_id = "
                    "(SELECT id FROM guests WHERE sender_id = 'kf:old-request')"
                ),
                {"t": day_ago.replace(tzinfo=None)},
            )
        stop = asyncio.Event()
        job = asyncio.ensure_future(runtime._privacy_jobs(stop, crm))
        for _ in range(100):
            await asyncio.sleep(0.1)
            if crm.find_guest("kf:old-request") is None:
                break
        stop.set()
        await asyncio.wait_for(job, 10)
        assert crm.find_guest("kf:old-request") is None
        # The request younger than 24 h waits for staff: guest and ticket untouched.
        assert crm.find_guest("kf:fresh-request").display_name == "请求删除的客人"
        assert [t.kind for t in crm.tickets("kf:fresh-request")] == ["data_deletion"]
        [entry] = crm.audit_entries(action="guest.erase")
        assert entry.actor == "worker:auto-erasure"
    finally:
        crm.close()
        crypto.reset_for_tests()

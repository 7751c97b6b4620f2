"""PIPL erasure, end to end: a guest talks to the real stack (preferences, an order, a complaint,
a deletion request), their words also sit in the WeCom inbox/outbox, the spool and Redis; after
`concierge guest export` (which must hold all of it) `concierge guest erase` leaves none of the
guest's name, phone or message text in any table of the CRM, the tracker store, the spool files
or Redis."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, select

from bot.crm.store import CRMStore, china_today
from bot.settings import PROJECT_ROOT
from tests.conftest import REDIS_TEST_URL, require_service

pytestmark = pytest.mark.rasa_model

NAME = "欧阳晓梅"
PHONE = "13912345678"
MESSAGES = [
    "我们是来度蜜月的，老公对海鲜过敏，想要高楼层",
    "帮我订明天早上8点的接机，航班号CA1234，我们两个人",
    "确认",
    "房间里有很重的烟味，受不了",
    "昨晚一进门就有",
    "请删除我的个人信息",
]
# The guest's distinctive words (short answers such as "确认" are everyone's).
NEEDLES = [NAME, PHONE, *[m for m in MESSAGES if len(m) >= 4]]


def cli(stack, env, *args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=check,
    )


def readable(value) -> str:
    """A cell as text: decrypted if encrypted, JSON un-escaped (Rasa stores events as
    ASCII-escaped JSON)."""
    text = str(value)
    if text.startswith("gAAAAA"):  # a Fernet token: scan what it protects
        from bot.crm.crypto import decrypt

        text = decrypt(text)
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except (ValueError, TypeError):
        return text


def scan_database(url: str) -> list[str]:
    """Every cell of every table, as text: where a needle is found."""
    engine = create_engine(url, future=True)
    hits = []
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(select(table)):
                    cell_text = " ".join(readable(v) for v in row)
                    hits += [f"{table.name}: {n}" for n in NEEDLES if n in cell_text]
    finally:
        engine.dispose()
    return hits


def scan_redis(client, ids, texts) -> list[str]:
    """Keys or values naming the guest's ids, and the guest's texts in a value that names them
    (the shared test Redis may hold other runs' entries with the same sample sentences)."""
    hits = []
    for key in client.scan_iter(count=1000):
        name = key.decode("utf-8", "replace")
        kind = client.type(key).decode()
        values = [name]
        if kind == "string":
            values.append((client.get(key) or b"").decode("utf-8", "replace"))
        elif kind == "list":
            values += [v.decode("utf-8", "replace") for v in client.lrange(key, 0, -1)]
        elif kind == "hash":
            values += [v.decode("utf-8", "replace") for v in client.hgetall(key).values()]
        text = " ".join(values)
        hits += [f"redis {name}: {n}" for n in ids if n in text]
        if any(n in text for n in ids[:2]):
            hits += [f"redis {name}: {n}" for n in texts if n in text]
    return hits


def test_erase_leaves_nothing(rasa_stack, tmp_path):
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    sender = f"kf:wm_erase_{uuid.uuid4().hex[:10]}"
    external = sender.split(":", 1)[1]
    stack = rasa_stack
    store = CRMStore(stack.database_url)
    try:
        store.get_or_create_guest(sender, name=NAME)
        store.update_guest(sender, phone=PHONE, kf_external_userid=external)
        today = china_today()
        store.add_booking(
            sender,
            property_id="sanya-haitang-resort",
            city="三亚",
            check_in=today + dt.timedelta(days=1),
            check_out=today + dt.timedelta(days=5),
            purpose="蜜月",
            party_size=2,
        )
    finally:
        store.close()
    for text in MESSAGES:
        stack.say(sender, text)

    # Copies of the guest's words outside the conversation: what WeCom delivery leaves behind.
    from bot.wecom.db import Database
    from bot.wecom.delivery.inbox import Inbound, Inbox
    from bot.wecom.delivery.outbox import Outbox
    from bot.crm.db import make_engine

    engine = make_engine(stack.database_url)
    db = Database(engine)
    row_id = Inbox(db).add_sync(
        Inbound(
            f"kf:{uuid.uuid4().hex}",
            "kf",
            sender,
            "text",
            {"text": MESSAGES[0], "external_userid": external},
        )
    )
    with engine.begin() as conn:  # already handled: the running Rasa must not pick it up
        from sqlalchemy import text as sql

        conn.execute(sql("UPDATE wecom_inbox SET status = 'done' WHERE id = :id"), {"id": row_id})
    Outbox(db).begin_sync(
        "app",
        "/cgi-bin/message/send",
        {"textcard": {"description": f"客人：{NAME} “{MESSAGES[3]}”"}},
        "advisor_li",
        f"sla:{uuid.uuid4().hex}:x",
    )
    engine.dispose()
    spool_file = tmp_path / "spool" / "crm-writes.jsonl"
    from bot.spool import FileSpool, RedisSpool, new_entry

    FileSpool(spool_file).append(new_entry("preferences.record", sender, {"text": MESSAGES[0]}))
    other = new_entry("preferences.record", "kf:someone-else", {"text": "我想要安静的房间呀"})
    FileSpool(spool_file).append(other)
    client = redis.Redis.from_url(REDIS_TEST_URL)
    RedisSpool(REDIS_TEST_URL).append(new_entry("tickets.complaint", sender, {"text": MESSAGES[3]}))
    client.set(f"concierge:wecom:rl:kf:{external}", "3", ex=600)
    client.set(f"lock:{sender}", "1", ex=600)

    tracker_url = f"sqlite:///{Path(stack.endpoints).parent / 'tracker.db'}"
    env = {
        **stack.env,
        "TRACKER_DATABASE_URL": tracker_url,
        "CONCIERGE_SPOOL_FILE": str(spool_file),
        "REDIS_URL": REDIS_TEST_URL,
    }
    env.pop("WECOM_CORP_TAGS_FILE", None)

    before = scan_database(stack.database_url) + scan_database(tracker_url)
    assert any(NAME in h for h in before) and any(MESSAGES[3] in h for h in before)

    export = json.loads(cli(stack, env, "guest", "export", sender, "--actor", "cli:dpo").stdout)
    said = [e["text"] for e in export["conversation"] if e["type"] == "user"]
    assert said == MESSAGES
    assert export["profile"]["guest"]["phone"] == PHONE
    assert export["profile"]["orders"] and export["profile"]["tickets"]
    assert export["wecom_inbox"][0]["payload"]["text"] == MESSAGES[0]

    done = cli(
        stack,
        env,
        "guest",
        "erase",
        sender,
        "--reason",
        "guest asked (test)",
        "--json",
        "--actor",
        "cli:dpo",
    )
    report = json.loads(done.stdout)["erased"]
    assert report["guest"] == 1 and report["tracker_events"] > 0

    # Both spools (Redis, and the file from a time without Redis) keep only other guests' entries.
    assert [e["sender_id"] for e in FileSpool(spool_file).entries()] == ["kf:someone-else"]
    assert sender not in {e["sender_id"] for e in RedisSpool(REDIS_TEST_URL).entries()}

    hits = scan_database(stack.database_url) + scan_database(tracker_url)
    for path in spool_file.parent.glob("*"):
        text = path.read_text(encoding="utf-8")
        hits += [f"{path.name}: {n}" for n in NEEDLES if n in text]
    hits += scan_redis(client, [sender, external, NAME, PHONE], NEEDLES)
    assert hits == []

    audit = CRMStore(stack.database_url)
    try:
        [entry] = audit.audit_entries(action="guest.erase", subject_id=sender)
        assert entry.actor == "cli:dpo" and entry.detail["reason"] == "guest asked (test)"
    finally:
        audit.close()
    assert cli(stack, env, "guest", "export", sender, check=False).returncode == 1

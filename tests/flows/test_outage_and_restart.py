"""When the CRM cannot be reached the guest is told we will follow up and the write is queued
durably (file spool, or Redis with REDIS_URL); it lands once the database is back, also after an
action-server restart. Records written normally survive a restart (they are in the database)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy.exc import OperationalError

from actions.complaints import ActionComplaintTriage
from actions.human import ActionRequestHuman
from actions.orders import ActionSubmitOrder
from actions.preferences import ActionRecordPreferences
from actions.privacy import ActionUnsubscribe
from bot.crm.store import CRMStore, StoreUnavailable
from bot.replies import QUEUED_TEXT
from bot.spool import FileSpool, RedisSpool, new_entry, replay
from tests.conftest import REDIS_TEST_URL, require_service

from .helpers import run, tracker
from .test_orders import new_orders, player


@pytest.fixture
def database_down():
    """Every store call fails as an unreachable database does (through the store's own guard).
    Call the fixture's value to bring the database back."""

    def broken(self):
        raise OperationalError("SELECT 1", {}, Exception("could not connect to server"))

    patch = pytest.MonkeyPatch()  # its own: undoing it must not undo the test's environment
    patch.setattr(CRMStore, "_session", broken)
    yield patch.undo
    patch.undo()


async def test_an_order_during_an_outage_is_queued_and_lands_after_a_restart(
    services, fresh_store, spool_file, database_down, restart
):
    p = player("demo-lin")
    # the form still works without the CRM (stay checks are skipped, the advisor verifies)
    await p.say("明早八点接机，航班CA1234，2个人", "order_addon")
    assert p.slots["requested_slot"] == "order_confirm"
    await p.say("确认", "affirm")
    messages, _ = await p.run_action(ActionSubmitOrder())
    assert messages == [QUEUED_TEXT]
    entries = [json.loads(line) for line in spool_file.read_text(encoding="utf-8").splitlines()]
    assert [e["op"] for e in entries] == ["orders.create"]
    assert entries[0]["payload"]["flight_no"] == "CA1234"

    database_down()  # the database is back ...
    fresh = restart()  # ... and the action server was restarted in between
    assert fresh.flows.replay_pending() == 1
    [order] = new_orders(fresh_store, "demo-lin")
    assert (order.item, order.flight_no, order.sla_class) == ("接机", "CA1234", "addon_order")
    # placed on the stay it belongs to once the CRM could be read again
    assert order.booking_id == fresh_store.upcoming_bookings("demo-lin")[0].id
    assert order.property_id == "sanya-haitang-resort"
    assert spool_file.read_text(encoding="utf-8") == ""


async def test_the_next_action_replays_the_backlog_first(services, fresh_store, database_down):
    messages, _ = await run(
        ActionRecordPreferences(), tracker("demo-lin", "要高楼层，无烟房", "inform_preference")
    )
    assert messages == [QUEUED_TEXT]
    messages, _ = await run(ActionRequestHuman(), tracker("demo-lin", "转人工", "request_human"))
    assert messages == [QUEUED_TEXT]
    assert len(services.flows.spool) == 2
    database_down()  # restore

    messages, _ = await run(ActionUnsubscribe(), tracker("demo-lin", "别再发了", "unsubscribe"))
    assert "退订" in messages[0]
    assert len(services.flows.spool) == 0
    assert {t.value for t in fresh_store.tags("demo-lin")} == {"高楼层", "无烟房"}
    assert [h.reason for h in fresh_store.handoffs("demo-lin")] == ["request_human"]
    assert not fresh_store.has_consent("demo-lin", "marketing")


async def test_a_major_incident_during_an_outage_still_gets_empathy_and_emergency_numbers(
    services, fresh_store, database_down
):
    messages, events = await run(
        ActionComplaintTriage(), tracker("demo-lin", "孩子在泳池受伤了", "complain")
    )
    assert "120" in " ".join(messages) and QUEUED_TEXT in messages
    assert {"complaint_route": "handed_off"}.items() <= {
        e["name"]: e["value"] for e in events if e["event"] == "slot"
    }.items()
    database_down()
    assert services.flows.replay_pending() == 2
    [ticket] = fresh_store.tickets("demo-lin")
    assert (ticket.severity, ticket.sla_class) == ("major", "complaint_major")
    assert [h.reason for h in fresh_store.handoffs("demo-lin")] == ["major_incident"]


async def test_records_survive_an_action_server_restart(services, restart):
    await run(ActionRequestHuman(), tracker("demo-lin", "转人工", "request_human"))
    fresh = restart()
    assert [h.reason for h in fresh.store.handoffs("demo-lin")] == ["request_human"]
    messages, _ = await run(ActionRequestHuman(), tracker("demo-lin", "转人工", "request_human"))
    assert "已经在为您安排" in messages[0]  # the restarted server knows the open handoff


# ---- the spool itself ----------------------------------------------------------------------------


def test_file_spool_keeps_entries_across_instances(tmp_path):
    path = tmp_path / "s.jsonl"
    FileSpool(path).append(new_entry("x", "g", {"n": 1}))
    FileSpool(path).append(new_entry("x", "g", {"n": 2}))
    again = FileSpool(path)
    assert len(again) == 2 and again.peek()["payload"] == {"n": 1}


def test_replay_stops_while_the_store_is_still_down(tmp_path):
    spool = FileSpool(tmp_path / "s.jsonl")
    spool.append(new_entry("x", "g", {}))

    def down(entry):
        raise StoreUnavailable("still down")

    assert replay(spool, {"x": down}) == 0
    assert len(spool) == 1


def test_a_poison_entry_is_parked_after_five_attempts(tmp_path):
    spool = FileSpool(tmp_path / "s.jsonl")
    spool.append(new_entry("x", "g", {}))
    spool.append(new_entry("ok", "g", {}))
    done = []

    def bad(entry):
        raise ValueError("bug")

    for _ in range(5):
        replay(spool, {"x": bad, "ok": done.append})
    assert len(spool) == 1 and spool.peek()["op"] == "ok"
    assert (tmp_path / "s.dead.jsonl").read_text(encoding="utf-8").count("\n") == 1
    assert replay(spool, {"ok": done.append}) == 1 and len(done) == 1


def test_redis_spool(monkeypatch):
    require_service("Redis", "127.0.0.1", 6379)
    spool = RedisSpool(REDIS_TEST_URL, key=f"concierge:test:spool:{uuid.uuid4().hex}")
    spool.client.delete(spool.key)
    try:
        spool.append(new_entry("x", "g", {"n": 1}))
        spool.append(new_entry("x", "g", {"n": 2}))
        seen = []
        assert replay(spool, {"x": lambda e: seen.append(e["payload"]["n"])}) == 2
        assert seen == [1, 2] and len(spool) == 0
    finally:
        spool.client.delete(spool.key)

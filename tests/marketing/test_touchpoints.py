"""Touchpoints on the demo data with an injected clock (TODAY = the day the demo was loaded).
demo-lin arrives on day 6, so her T-3 is due on day 3 from 09:00 China time."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.crm import models as cm
from bot.crm.store import CRMStore
from bot.knowledge.kb import KnowledgeBase
from bot.knowledge.weather import DemoWeatherProvider
from bot.marketing.models import MassSend, TouchpointRun
from bot.marketing.nps import NpsService
from bot.marketing.touchpoints import (
    TouchpointConfigError,
    TouchpointService,
    load_sequences,
    parse_sequences,
)
from bot.orders.catalogue import Catalogue
from bot.pretrip import PreTripService
from tests.marketing.conftest import TODAY, at, policy


class Messenger:
    def __init__(self, status="queued"):
        self.sent = []
        self.status = status

    async def __call__(self, guest, text, *, marketing, key):
        self.sent.append((guest.sender_id, text, marketing, key))
        return self.status, "task"


def build(engine, messenger=None, **kw):
    kb = KnowledgeBase.default()
    pretrip = PreTripService(store=CRMStore(engine), kb=kb, weather=DemoWeatherProvider(kb))
    return TouchpointService(
        engine,
        policy(**kw),
        load_sequences(),
        messenger=messenger,
        pretrip=pretrip,
        catalogue=Catalogue.default(),
    )


def runs(engine):
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    TouchpointRun.kind,
                    TouchpointRun.status,
                    TouchpointRun.late,
                    TouchpointRun.occasion,
                )
            )
        )


async def test_t_minus_3_fires_once_with_practical_information_and_an_addon(demo):
    messenger = Messenger()
    service = build(demo, messenger)
    early = await service.run(now=at(3, 8, 30))  # due from 09:00
    assert early["due"] == 0 and messenger.sent == []
    report = await service.run(now=at(3, 10))
    assert [(e["sender_id"], e["kind"], e["late"]) for e in report["sent"]] == [
        ("demo-lin", "t_minus_3", False)
    ]
    sender, text, marketing, _ = messenger.sent[0]
    assert marketing is False  # service information: no marketing consent needed
    for words in ("12月7日", "天气", "紧急联系", "0898", "附近美食", "潜水"):
        assert words in text
    again = await service.run(now=at(3, 11))
    assert again["sent"] == [] and len(messenger.sent) == 1
    # a fresh service (a restarted worker) does not send it again either
    assert (await build(demo, messenger).run(now=at(4, 10)))["sent"] == []


async def test_due_while_the_worker_was_down_fires_once_late(demo):
    messenger = Messenger()
    report = await build(demo, messenger).run(now=at(4, 15))  # a day after it fell due
    assert [(e["sender_id"], e["late"]) for e in report["sent"]] == [("demo-lin", True)]
    assert runs(demo) == [("t_minus_3", "sent", True, str(_booking(demo, "DEMO-LIN-001")))]
    assert (await build(demo, messenger).run(now=at(4, 16)))["sent"] == []


async def test_too_late_after_arrival_it_is_not_sent(demo):
    messenger = Messenger()
    assert (await build(demo, messenger).run(now=at(6, 10)))["sent"] == []


async def test_quiet_hours_hold_touchpoints_back(demo):
    messenger = Messenger()
    service = build(demo, messenger)
    quiet = await service.run(now=at(3, 23))
    assert quiet["sent"] == [] and [e["sender_id"] for e in quiet["deferred"]] == ["demo-lin"]
    assert messenger.sent == [] and runs(demo) == []
    assert len((await service.run(now=at(4, 8, 1)))["sent"]) == 1


async def test_dry_run_sends_and_records_nothing(demo):
    messenger = Messenger()
    report = await build(demo, messenger).run(now=at(3, 10), dry_run=True)
    assert report["sent"][0]["would_send"] and messenger.sent == [] and runs(demo) == []


async def test_two_runs_at_once_send_once(demo):
    import asyncio

    messenger = Messenger()
    a, b = build(demo, messenger), build(demo, messenger)
    await asyncio.gather(a.run(now=at(3, 10)), b.run(now=at(3, 10)))
    assert len(messenger.sent) == 1


async def test_switched_off_for_the_property(demo):
    messenger = Messenger()
    service = build(demo, messenger)
    service.set_enabled("sanya-haitang-resort", "t_minus_3", False, actor="t")
    assert (await service.run(now=at(3, 10)))["due"] == 0
    steps = {s["kind"]: s["enabled"] for s in service.sequence("sanya-haitang-resort")}
    assert steps["t_minus_3"] is False and steps["t_plus_7"] is True
    with pytest.raises(TouchpointConfigError):
        service.set_enabled("sanya-haitang-resort", "t_minus_30", False, actor="t")


async def test_birthday_is_marketing_needs_consent_and_takes_a_cap_slot(demo):
    store = CRMStore(demo)
    store.update_guest("demo-zhao", birthday=TODAY + dt.timedelta(days=1))
    store.update_guest("demo-sun", birthday=TODAY + dt.timedelta(days=1))  # opted out
    messenger = Messenger()
    report = await build(demo, messenger, cap=1).run(now=at(1, 10))  # (late T-3s go too)
    birthdays = [m for m in messenger.sent if "birthday" in m[3]]
    assert [(m[0], m[2]) for m in birthdays] == [("demo-zhao", True)]
    assert "生日快乐" in birthdays[0][1]
    assert {(e["sender_id"], e["reason"]) for e in report["skipped"]} == {
        ("demo-sun", "no_consent")
    }
    with demo.connect() as conn:
        assert conn.execute(select(MassSend.source)).scalars().all() == ["touchpoint:birthday"]


async def test_marketing_touchpoint_over_the_cap_is_not_sent(demo):
    store = CRMStore(demo)
    store.update_guest("demo-zhao", birthday=TODAY + dt.timedelta(days=1))
    guest_id = store.find_guest("demo-zhao").id
    with demo.begin() as conn:
        conn.execute(
            MassSend.__table__.insert(),
            [{"target": f"guest:{guest_id}", "source": "campaign:1", "sent_at": at(0)}],
        )
    messenger = Messenger()
    report = await build(demo, messenger, cap=1).run(now=at(1, 10))
    assert not [m for m in messenger.sent if "birthday" in m[3]]
    assert ("demo-zhao", "over_cap") in {(e["sender_id"], e["reason"]) for e in report["skipped"]}


async def _t_plus_7(demo, messenger):
    """demo-chen's stay DEMO-CHEN-001 (day 2-4) completed; T+7 is due on day 11."""
    store = CRMStore(demo)
    store.set_booking_status(_booking(demo, "DEMO-CHEN-001"), "completed")
    return await build(demo, messenger).run(now=at(11, 10))


async def test_t_plus_7_survey_then_the_answer_is_stored(demo):
    messenger = Messenger()
    report = await _t_plus_7(demo, messenger)
    assert [(e["sender_id"], e["kind"]) for e in report["sent"]] == [("demo-chen", "t_plus_7")]
    text = messenger.sent[0][1]
    assert "0到10分" in text and "复购券" in text  # chen consented: the coupon is included
    nps = NpsService(demo, review_url="https://example.com/review")
    assert nps.maybe_record("demo-chen", "你们早餐几点") is None  # not a score: to the bot
    reply = nps.maybe_record("demo-chen", "9分")
    assert "https://example.com/review" in reply
    assert nps.maybe_record("demo-chen", "10") is None  # answered once
    fb = CRMStore(demo).feedback("demo-chen")
    assert [(f.kind, f.score, f.text) for f in fb] == [("nps", 9, "9分")]


async def test_a_detractor_opens_a_service_recovery_ticket_for_paging(demo):
    await _t_plus_7(demo, Messenger())
    reply = NpsService(demo).maybe_record("demo-chen", "很差")
    tickets = CRMStore(demo).tickets("demo-chen")
    assert [(t.kind, t.sla_class, t.status) for t in tickets] == [
        ("service_recovery", "complaint_routine", "open")
    ]
    assert f"编号 {tickets[0].id}" in reply and "10分钟" in reply


async def test_survey_without_consent_has_no_coupon(demo):
    store = CRMStore(demo)
    store.set_consent("demo-chen", "marketing", False, source="test")
    messenger = Messenger()
    await _t_plus_7(demo, messenger)
    assert "复购券" not in messenger.sent[0][1] and "0到10分" in messenger.sent[0][1]


async def test_a_failed_send_is_recorded_not_retried(demo):
    messenger = Messenger(status="no_channel")
    report = await build(demo, messenger).run(now=at(3, 10))
    assert report["skipped"][0]["reason"] == "no_channel"
    assert runs(demo)[0][1] == "failed"


def test_bad_sequence_files_are_refused():
    with pytest.raises(TouchpointConfigError, match="unknown touchpoint 't_minus_4'"):
        parse_sequences({"default": {"t_minus_4": {}}})
    with pytest.raises(TouchpointConfigError, match="hour"):
        parse_sequences({"default": {"t_minus_3": {"hour": 25}}})
    with pytest.raises(TouchpointConfigError, match="unknown key"):
        parse_sequences({"default": {"t_minus_3": {"when": 1}}})


def _booking(engine, confirmation):
    with engine.connect() as conn:
        return conn.execute(
            select(cm.Booking.id).where(cm.Booking.confirmation_no == confirmation)
        ).scalar_one()


async def test_the_answer_in_conversation_is_taken_before_rasa(demo):
    from bot.marketing.hooks import nps_guest_hook

    await _t_plus_7(demo, Messenger())
    said, forwarded = [], []
    hook = nps_guest_hook(NpsService(demo))
    for text in ("请问早餐几点", "还行吧 7", "8"):
        answer = await hook("demo-chen", text)
        if answer:
            said.append(("demo-chen", answer))
        else:
            forwarded.append(text)
    assert forwarded == ["请问早餐几点", "8"]  # the second score goes to the bot: answered once
    assert len(said) == 1 and "7分" in said[0][1]
    assert [f.score for f in CRMStore(demo).feedback("demo-chen")] == [7]


async def test_the_pipl_copy_lists_what_marketing_sent(demo):
    from bot.audit import Staff
    from bot.guest_export import export_guest

    await build(demo, Messenger()).run(now=at(3, 10))
    exported = export_guest(CRMStore(demo), "demo-lin", staff=Staff("cli", "dpo"))
    touchpoints = exported["marketing"]["touchpoints"]
    assert [(t["kind"], t["status"]) for t in touchpoints] == [("t_minus_3", "sent")]
    assert "紧急联系" in touchpoints[0]["text"] and exported["marketing"]["campaigns"] == []

"""The paging store reads guests only through its port (bot.paging.ports.GuestRecords): a fake
adapter with no CRM tables behind it is enough to start clocks, find gone subjects and list past
complaints; the CRM's adapter answers the same questions from the CRM."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.crm.db import upgrade
from bot.crm.paging_records import CRMGuestRecords
from bot.paging.clocks import plan_clock
from bot.paging.ports import Stay, Subject
from bot.paging.store import PagingStore

from .conftest import complaint, new_guest

NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc)  # 10:00 in China


class FakeRecords:
    """GuestRecords from lists: what a test (or another CRM) can hand the paging store."""

    def __init__(self, subjects, stays=None, complaints=None, statuses=None):
        self.subjects = {(s.subject_type, s.subject_id): s for s in subjects}
        self._stays = stays or {}
        self._complaints = complaints or {}
        self.statuses = statuses or {}
        self.asked = []

    def open_subjects(self, subject_type, statuses, since, *, exclude_ids, limit):
        self.asked.append(("open", subject_type, set(exclude_ids)))
        return [
            s
            for (t, i), s in sorted(self.subjects.items())
            if t == subject_type
            and s.status in statuses
            and s.created_at >= since
            and i not in exclude_ids
        ][:limit]

    def subject(self, subject_type, subject_id):
        return self.subjects.get((subject_type, subject_id))

    def stays(self, guest_ids):
        return {g: self._stays[g] for g in guest_ids if g in self._stays}

    def complaints_before(self, guest_id, before, exclude_ticket, limit):
        return [c for c in self._complaints.get(guest_id, []) if c[0] != exclude_ticket][:limit]

    def ticket_media(self, ticket_id):
        return [(1, "image")] if ticket_id == 7 else []

    def subjects_in_status(self, subject_type, subject_ids, statuses):
        return {i for i in subject_ids if self.statuses.get((subject_type, i)) in statuses}

    def guest_subjects(self, guest_id):
        return {"ticket": [7], "order": [], "handoff": []}


def _ticket(**kw):
    base = dict(
        subject_type="ticket",
        subject_id=7,
        guest_id=1,
        sender_id="kf:a",
        sla_class="complaint_routine",
        status="open",
        created_at=NOW,
        details={
            "kind": "complaint",
            "category": "噪音",
            "description": "隔壁很吵",
            "location": "1203",
            "since_text": None,
        },
    )
    base.update(kw)
    return Subject(**base)


def _order(**kw):
    base = dict(
        subject_type="order",
        subject_id=3,
        guest_id=1,
        sender_id="kf:a",
        sla_class="addon_order",
        status="requested",
        created_at=NOW,
        booking_id=11,
        details={
            "item": "接机",
            "scheduled_at": NOW,
            "party_size": 2,
            "flight_no": "CA1234",
            "notes": None,
        },
    )
    base.update(kw)
    return Subject(**base)


@pytest.fixture
def paging_db(sqlite_url):
    """A migrated database with the one guest row the clocks' guest_id refers to (erasure
    deletes a guest's clocks through that foreign key); nothing else of the CRM is used."""
    from bot.crm.store import CRMStore

    upgrade(sqlite_url)
    crm = CRMStore(sqlite_url)
    assert crm.get_or_create_guest("kf:a").id == 1
    crm.close()
    return sqlite_url


def test_clocks_start_from_the_port_alone(paging_db, policy):
    stays = {
        1: [
            Stay(
                10,
                "shanghai-bund-hotel",
                NOW.date() - dt.timedelta(days=30),
                NOW.date() - dt.timedelta(days=28),
            ),
            Stay(11, "sanya-haitang-resort", NOW.date(), NOW.date() + dt.timedelta(days=3)),
        ]
    }
    records = FakeRecords([_ticket(), _order()], stays=stays)
    store = PagingStore(paging_db, records)
    infos = store.unclocked_subjects(NOW - dt.timedelta(hours=1), NOW)
    by_type = {i.subject_type: i for i in infos}
    # the summary is the template's (bot/templates/paging/summary.j2), not the store's
    assert by_type["ticket"].summary == "噪音；隔壁很吵；地点：1203"
    assert by_type["order"].summary == "接机；03-02 10:00；2人；航班 CA1234"
    # the ticket has no booking: the guest's current stay decides; the order names its booking
    assert by_type["ticket"].property_id == by_type["order"].property_id == "sanya-haitang-resort"

    info = by_type["ticket"]
    store.create_clock(info, plan_clock(policy, info.sla_class, info.created_at, info.property_id))
    again = store.unclocked_subjects(NOW - dt.timedelta(hours=1), NOW)
    assert [i.subject_type for i in again] == ["order"]
    assert ("open", "ticket", {7}) in records.asked  # the clocked ticket was left out by id
    assert store.ticket_media(7) == [(1, "image")]
    store.close()


def test_gone_subjects_cancel_their_clocks(paging_db, policy):
    records = FakeRecords([_order()])
    store = PagingStore(paging_db, records)
    info = store.subject("order", 3, NOW)
    clock, created = store.create_clock(
        info, plan_clock(policy, info.sla_class, info.created_at, info.property_id)
    )
    assert created and store.cancel_gone_subjects(NOW) == []
    records.statuses[("order", 3)] = "cancelled"
    [cancelled] = store.cancel_gone_subjects(NOW)
    assert cancelled.id == clock.id and store.clock(clock.id).state == "cancelled"
    assert [n.text for n in store.notes(clock.id) if n.kind == "cancelled"] == ["客人已取消订单"]
    store.close()


def test_past_complaints_join_the_ports_tickets_with_paging_clocks(paging_db, policy):
    earlier = NOW - dt.timedelta(days=40)
    records = FakeRecords(
        [_ticket(subject_id=5, created_at=earlier)],
        complaints={1: [(5, earlier), (4, earlier - dt.timedelta(days=1))]},
    )
    store = PagingStore(paging_db, records)
    info = store.subject("ticket", 5, NOW)
    clock, _ = store.create_clock(
        info, plan_clock(policy, info.sla_class, info.created_at, info.property_id)
    )
    store.add_note(clock.id, "advisor_li", "compensation", "免费升级一晚")
    store.resolve(clock.id, "advisor_li", "已处理", NOW)
    past = store.past_complaints(1, NOW)
    assert [(p.ticket_id, p.advisor, p.compensation) for p in past] == [
        (5, "advisor_li", "免费升级一晚"),
        (4, None, None),
    ]
    store.close()


def test_the_crm_adapter_answers_from_the_crm(stores):
    crm, paging = stores
    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    records = CRMGuestRecords(crm.engine)
    subject = records.subject("ticket", ticket.id)
    assert (subject.sender_id, subject.sla_class, subject.details["description"]) == (
        sender,
        "complaint_routine",
        "房间有很重的烟味",
    )  # decrypted by the CRM's model
    since = subject.created_at - dt.timedelta(seconds=1)
    assert [
        s.subject_id
        for s in records.open_subjects("ticket", ["open"], since, exclude_ids=(), limit=10)
    ] == [ticket.id]
    assert records.open_subjects("ticket", ["open"], since, exclude_ids={ticket.id}, limit=10) == []
    assert records.subjects_in_status("ticket", {ticket.id}, ["open"]) == {ticket.id}
    assert records.guest_subjects(subject.guest_id)["ticket"] == [ticket.id]
    assert isinstance(paging.records, CRMGuestRecords)  # the default adapter

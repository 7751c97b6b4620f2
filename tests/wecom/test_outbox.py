"""The outbox: a send left 'sending' by a process that died is retried once it is stale, not before."""

from __future__ import annotations

from bot.wecom.clock import ManualClock
from bot.wecom.delivery.outbox import Outbox


def test_a_send_left_in_flight_by_a_dead_process_becomes_due_when_stale(database):
    clock = ManualClock()
    outbox = Outbox(database, stale_sending_s=120, clock=clock)
    in_flight = outbox.begin_sync(
        "kf", "/cgi-bin/kf/send_msg", {"msgtype": "text"}, "kf:wm1", "reply:1:0"
    )
    clock.advance_sync(119)
    assert outbox.due_sync() == []  # a live process may still be sending it
    clock.advance_sync(2)
    assert [i.id for i in outbox.due_sync()] == [in_flight]
    assert outbox.claim_retry_sync(in_flight) is True
    assert outbox.due_sync() == []  # claimed again: fresh
    # the same reply key is never begun twice
    assert (
        outbox.begin_sync("kf", "/cgi-bin/kf/send_msg", {"msgtype": "text"}, "kf:wm1", "reply:1:0")
        is None
    )


def test_a_retry_is_due_at_its_time_and_dead_after_the_last_attempt(database):
    clock = ManualClock()
    outbox = Outbox(database, max_attempts=2, clock=clock)
    row = outbox.begin_sync(
        "app", "/cgi-bin/message/send", {"msgtype": "text"}, "wecom:a", "page:1"
    )
    assert outbox.mark_sync(row, "retry", errcode=-1, retry_in_s=30) == "retry"
    clock.advance_sync(29)
    assert outbox.due_sync() == []
    clock.advance_sync(1)
    assert [i.id for i in outbox.due_sync()] == [row]
    assert outbox.mark_sync(row, "retry", errcode=-1, retry_in_s=30) == "dead"
    clock.advance_sync(3600)
    assert outbox.due_sync() == []

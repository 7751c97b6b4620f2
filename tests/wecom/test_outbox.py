"""The outbox: a send left 'sending' by a process that died is retried once it is stale, not before."""
from __future__ import annotations

import time

from bot.wecom.delivery.outbox import Outbox


def test_a_send_left_in_flight_by_a_dead_process_becomes_due_when_stale(database):
    outbox = Outbox(database, stale_sending_s=0.3)
    in_flight = outbox.begin_sync("kf", "/cgi-bin/kf/send_msg", {"msgtype": "text"}, "kf:wm1", "reply:1:0")
    assert outbox.due_sync() == []  # a live process may still be sending it
    time.sleep(0.4)
    assert [i.id for i in outbox.due_sync()] == [in_flight]
    assert outbox.claim_retry_sync(in_flight) is True
    assert outbox.due_sync() == []  # claimed again: fresh
    # the same reply key is never begun twice
    assert outbox.begin_sync("kf", "/cgi-bin/kf/send_msg", {"msgtype": "text"}, "kf:wm1", "reply:1:0") is None

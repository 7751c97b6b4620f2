"""Issue 4's done-when over the REST channel, against the real stack (trained model, action
server, CRM): a guest states three preferences, orders an airport pickup for tomorrow 8 am,
complains that the room smells of smoke and asks for a person; `concierge guest show --json`
then shows exactly those tags, one order, one routine complaint ticket and one handoff, each with
its SLA class.

The guest is a demo-like guest created here (demo-lin's stay in demo.yml starts in six days, and
a pickup is only valid on the arrival day): a 三亚 honeymoon stay from tomorrow.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from bot.crm.store import CRMStore, china_today
from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.rasa_model

SENDER = "e2e-flows-lin"


def texts(replies):
    return "\n".join(r.get("text", "") for r in replies)


@pytest.fixture(scope="module")
def guest(rasa_stack):
    store = CRMStore(rasa_stack.database_url)
    try:
        store.get_or_create_guest(SENDER, name="林晓（测试）", is_demo=True)
        today = china_today()
        store.add_booking(
            SENDER,
            property_id="sanya-haitang-resort",
            city="三亚",
            check_in=today + dt.timedelta(days=1),
            check_out=today + dt.timedelta(days=5),
            room_type="海景大床房",
            purpose="蜜月",
            party_size=2,
        )
    finally:
        store.close()
    return SENDER


def profile(stack, sender):
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "guest", "show", sender, "--json"],
        cwd=PROJECT_ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_done_when_over_rest(rasa_stack, guest):
    say = lambda text: texts(rasa_stack.say(guest, text))  # noqa: E731

    reply = say("我们是来度蜜月的，老公对海鲜过敏，想要高楼层")
    assert "蜜月" in reply and "海鲜" in reply and "高楼层" in reply

    reply = say("帮我订明天早上8点的接机，航班号CA1234，我们两个人")
    assert "确认" in reply and "CA1234" in reply and "08:00" in reply
    reply = say("确认")
    assert "订单号" in reply

    reply = say("房间里有很重的烟味，受不了")
    assert "抱歉" in reply and "投诉编号" in reply  # the ticket opens with the first message
    reply = say("昨晚一进门就有")
    assert "补充到投诉" in reply  # the answer enriches that ticket

    reply = say("帮我转人工吧")
    assert "顾问" in reply

    data = profile(rasa_stack, guest)
    assert {(t["category"], t["value"]) for t in data["tags"] if t["active"]} == {
        ("purpose", "蜜月"),
        ("allergy", "海鲜"),
        ("floor", "高楼层"),
    }
    assert [(o["item"], o["flight_no"], o["sla_class"]) for o in data["orders"]] == [
        ("接机", "CA1234", "addon_order")
    ]
    assert [(t["kind"], t["severity"], t["sla_class"]) for t in data["tickets"]] == [
        ("complaint", "routine", "complaint_routine")
    ]
    assert [(h["reason"], h["sla_class"]) for h in data["handoffs"]] == [
        ("request_human", "human_request")
    ]

"""Issue 13's done-when typed into the sandbox as 微信客服 guests (sandbox → intake → the real
Rasa and action server → CRM → kf/send_msg): a new guest gives their booking number and the
last four digits of their phone, is linked, and their next weather question is answered for
their stay's city and dates; a guest with no booking who names 三亚 and next week gets 三亚's
forecast."""

from __future__ import annotations

import pytest

from bot.crm.store import CRMStore
from bot.knowledge.kb import KnowledgeBase
from bot.knowledge.weather import DemoWeatherProvider, china_today
from bot.pretrip import named_dates
from bot.settings import PROJECT_ROOT
from tests.e2e.test_wecom_loop import guest_says, kf_replies, wait_for

pytestmark = pytest.mark.rasa_model

NEW_GUEST, NO_BOOKING = "wm_e2e_link_lin", "wm_e2e_no_booking"


def _said_after(stack, ext, count, what):
    return wait_for(
        what, lambda: (lambda r: r[count:] if len(r) > count else None)(kf_replies(stack, ext))
    )


def test_new_kf_guest_links_then_gets_their_stays_weather(rasa_stack):
    guest_says(rasa_stack, NEW_GUEST, "我的行程是怎么安排的")
    asked = _said_after(rasa_stack, NEW_GUEST, 0, "the bot asks for a booking reference")
    assert any("订单号" in t for t in asked)
    seen = len(kf_replies(rasa_stack, NEW_GUEST))
    guest_says(rasa_stack, NEW_GUEST, "订单号 DEMO-LIN-001")
    assert any("后四位" in t for t in _said_after(rasa_stack, NEW_GUEST, seen, "second factor"))
    seen = len(kf_replies(rasa_stack, NEW_GUEST))
    guest_says(rasa_stack, NEW_GUEST, "尾号0001")
    linked = _said_after(rasa_stack, NEW_GUEST, seen, "linked")
    assert any("核对成功" in t and "三亚" in t for t in linked)

    store = CRMStore(rasa_stack.database_url)
    try:
        [booking] = store.upcoming_bookings(f"kf:{NEW_GUEST}")
    finally:
        store.close()
    assert booking.confirmation_no == "DEMO-LIN-001"
    seen = len(kf_replies(rasa_stack, NEW_GUEST))
    guest_says(rasa_stack, NEW_GUEST, "那边天气怎么样？")
    answer = "\n".join(_said_after(rasa_stack, NEW_GUEST, seen, "the weather answer"))
    assert "三亚" in answer and f"{booking.check_in.month}月{booking.check_in.day}日" in answer


def test_kf_guest_without_booking_gets_the_named_city_forecast(rasa_stack):
    guest_says(rasa_stack, NO_BOOKING, "我下周去三亚，天气怎么样？要带什么衣服？")
    answer = "\n".join(_said_after(rasa_stack, NO_BOOKING, 0, "the forecast"))
    start, end = named_dates("下周", china_today())
    kb = KnowledgeBase.load(PROJECT_ROOT / "data" / "knowledge")
    forecast = DemoWeatherProvider(kb).daily("三亚", start, end)
    assert "三亚" in answer and f"{start.month}月{start.day}日" in answer
    assert forecast and "°C" in answer and "订单号" not in answer

"""Issue 13's done-when through the real Rasa + action server (REST channel, with the sender
ids the WeCom connector gives 微信客服 guests): a new guest links with a booking number and the
last four digits of the phone, and their next weather question is answered for their stay; a
guest without any booking who names 三亚 and next week gets 三亚's forecast."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from bot.crm.store import CRMStore
from bot.knowledge.answers import fmt_temp
from bot.knowledge.kb import KnowledgeBase
from bot.knowledge.weather import DemoWeatherProvider, china_today
from bot.pretrip import named_dates
from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.rasa_model


def texts(replies):
    return "\n".join(r.get("text", "") for r in replies)


def _new_sender() -> str:
    return f"kf:wm{uuid.uuid4().hex[:12]}"


def test_new_guest_links_then_gets_their_stays_weather(rasa_stack):
    sender = _new_sender()
    asked = texts(rasa_stack.say(sender, "那边天气怎么样"))
    assert "订单号" in asked
    assert "后四位" in texts(rasa_stack.say(sender, "订单号 DEMO-LIN-001"))
    linked = texts(rasa_stack.say(sender, "尾号0001"))
    assert "核对成功" in linked and "三亚" in linked

    store = CRMStore(rasa_stack.database_url)
    try:
        [booking] = store.upcoming_bookings(sender)
        assert booking.confirmation_no == "DEMO-LIN-001"
    finally:
        store.close()
    answer = texts(rasa_stack.say(sender, "那边天气怎么样？"))
    assert f"{booking.check_in.month}月{booking.check_in.day}日" in answer and "三亚" in answer


def test_wrong_factor_three_times_locks_and_offers_a_human(rasa_stack):
    sender = _new_sender()
    rasa_stack.say(sender, "订单号 DEMO-LIN-001")
    assert "没有核对上" in texts(rasa_stack.say(sender, "尾号1234"))
    rasa_stack.say(sender, "订单号 DEMO-LIN-001")
    assert "没有核对上" in texts(rasa_stack.say(sender, "尾号2345"))
    locked = rasa_stack.say(sender, "订单号DEMO-LIN-001，手机尾号3456")
    assert "暂停" in texts(locked) and any(r.get("buttons") for r in locked)
    # Even the right answer is refused while locked.
    assert "核对成功" not in texts(rasa_stack.say(sender, "订单号DEMO-LIN-001，手机尾号0001"))


def test_a_guest_without_booking_gets_the_named_city_forecast(rasa_stack):
    sender = _new_sender()
    answer = texts(rasa_stack.say(sender, "我下周去三亚，天气怎么样？要带什么衣服？"))
    kb = KnowledgeBase.load(PROJECT_ROOT / "data" / "knowledge")
    start, end = named_dates("下周", china_today())
    forecast = DemoWeatherProvider(kb).daily("三亚", start, end)
    assert "三亚" in answer and f"{start.month}月{start.day}日" in answer
    if len(forecast) > 4:  # a longer stretch is summarised: its lowest and highest
        low, high = min(d.temp_min for d in forecast), max(d.temp_max for d in forecast)
        assert f"{fmt_temp(low)}~{fmt_temp(high)}°C" in answer
    for day in forecast[:4] if len(forecast) <= 4 else ():
        assert f"{fmt_temp(day.temp_min)}~{fmt_temp(day.temp_max)}°C" in answer
    assert "订单号" not in answer  # no booking was needed for this
    assert start - china_today() <= dt.timedelta(days=7)

"""Advisors act only on their own properties' cases; case links open one case, for the advisor
they were sent to, until they expire (bot.access, bot.paging.links)."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from bot.paging.case_pages import CasePages
from bot.paging.links import CaseLinks
from bot.paging.policy import parse_policy
from bot.paging.service import PagingService
from bot.paging.worker import PagingWorker
from bot.paging.context import GuestContext
from tests.paging.conftest import FAST_POLICY, complaint, new_guest


@pytest.fixture
def two_hotels():
    """The fast policy plus `sanya`, staffed by its own people only."""
    data = yaml.safe_load(FAST_POLICY.read_text(encoding="utf-8"))
    data["properties"]["sanya"] = {
        "roster": [
            {
                "userid": "advisor_chen",
                "name": "陈顾问",
                "on_duty": [{"days": "all", "from": "00:00", "to": "24:00"}],
            }
        ],
        "supervisors": [{"userid": "supervisor_sun", "name": "孙主管"}],
        "duty_manager": {"userid": "manager_he", "name": "何经理"},
        "emergency_group": {
            "name": "三亚应急群",
            "webhook": "http://127.0.0.1:8800/cgi-bin/webhook/send?key=k",
        },
    }
    return parse_policy(data, "two-hotels")


@pytest.fixture
def links(clock):
    return CaseLinks(
        "a-test-secret-that-is-long-enough-000", 3600, clock=lambda: clock().timestamp()
    )


@pytest.fixture
async def sanya_case(crm, paging, two_hotels, messenger, clock, links):
    sender = new_guest(crm)
    today = dt.date.today()
    booking = crm.add_booking(
        sender, property_id="sanya", check_in=today, check_out=today + dt.timedelta(days=3)
    )
    ticket = complaint(crm, sender, booking_id=booking.id)
    clock.set(ticket.created_at)
    worker = PagingWorker(
        paging,
        two_hotels,
        messenger,
        context=GuestContext(crm),
        clock=clock,
        worker_id="w1",
        links=links,
    )
    await worker.tick()
    return paging.clock_for("ticket", ticket.id)


async def test_the_page_goes_to_the_propertys_own_advisor_and_is_audited(
    sanya_case, messenger, crm
):
    assert sanya_case.property_id == "sanya"
    [card] = messenger.to("app", "advisor_chen")
    assert messenger.to("app", "advisor_li") == []
    [sent] = crm.audit_entries(action="case.page")
    assert sent.actor == "advisor:advisor_chen" and sent.detail["case"] == sanya_case.id
    assert "sig=" in card["url"]


async def test_advisor_of_another_property_cannot_act_on_the_case(
    sanya_case, paging, two_hotels, messenger, crm, clock
):
    service = PagingService(paging, two_hotels, messenger, crm=crm, clock=clock)
    for command in (
        f"接单 {sanya_case.id}",
        f"解决 {sanya_case.id} 已处理",
        f"备注 {sanya_case.id} 看看",
        f"接管 {sanya_case.id}",
        "接管 林晓",
    ):
        reply = await service.handle_command("advisor_li", command)
        assert "不属于您值班的酒店" in reply or "没有找到" in reply, (command, reply)
    assert paging.clock(sanya_case.id).acknowledged_at is None
    assert f"#{sanya_case.id}" not in await service.handle_command("advisor_li", "队列")
    assert "接单" in await service.handle_command("advisor_chen", f"接单 {sanya_case.id}")
    assert paging.clock(sanya_case.id).assignee_userid == "advisor_chen"


async def test_case_links(sanya_case, paging, two_hotels, messenger, crm, clock, links):
    channel = CasePages(PagingService(paging, two_hotels, messenger, crm=crm, clock=clock), links)
    case = sanya_case.id

    async def status(sig):
        return (await channel.case_page(case, sig)).status

    good = links.sign(case, "advisor_chen")
    assert await status(good) == 200
    assert crm.audit_entries(action="case.view")[0].actor == "advisor:advisor_chen"
    # another advisor's link to another case, moved onto this one
    assert await status(links.sign(case + 1, "advisor_chen")) == 403
    # a link signed for an advisor of another property (or a forger naming one)
    assert await status(links.sign(case, "advisor_li")) == 403
    expiry, viewer, mac = good.split(".")
    assert await status(f"{expiry}.{viewer}.{mac[:-1]}x") == 403
    assert await status(f"{int(expiry) + 999}.{viewer}.{mac}") == 403  # extended by hand
    assert await status("签名" + good) == 403  # non-ASCII
    assert await status("") == 403 and await status("a.b.c.d") == 403
    assert await status(f"{expiry}.***.{mac}") == 403
    other_secret = CaseLinks("another-secret-that-is-long-enough-111", 3600)
    assert await status(other_secret.sign(case, "advisor_chen")) == 403
    clock.advance(3601)
    assert await status(good) == 403  # expired
    # the emergency group's own link opens the case; another group's does not
    fresh = links.sign(case, "group:三亚应急群")
    assert await status(fresh) == 200
    assert await status(links.sign(case, "group:应急处理群")) == 403
    assert len(crm.audit_entries(action="case.view")) == 2

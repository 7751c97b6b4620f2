"""Campaigns on the demo data: preview, the send path's own checks, and the sandbox loop."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from bot.crm.store import CRMStore
from bot.marketing.campaigns import CampaignError, CampaignService
from bot.marketing.models import CampaignRecipient, MassSend
from bot.marketing.policy import Cap
from bot.privacy import PrivacyService
from bot.wecom.errors import TransportError, WeComAPIError
from tests.marketing.conftest import at, policy

MEMBER_DAY = {
    "name": "会员日",
    "kind": "member_day",
    "segment": {"tier_at_least": "金卡"},
    "template": "{{ name }}您好！今天是{{ tier }}会员日，积分{{ points }}可抵现。",
}
GOLD = {"demo-lin": "wm_demo_lin", "demo-chen": "wm_demo_chen", "kf:wm_guest_001": "wm_guest_001"}


class RecordingAPI:
    """Stands in for WeCom where a test needs to control the answer (the sandbox elsewhere)."""

    def __init__(self, fail=None, error=None):
        self.calls = []
        self.fail = set(fail or ())
        self.error = error

    async def add_msg_template(self, **kw):
        self.calls.append(kw)
        if self.error:
            raise self.error
        return {
            "msgid": f"m{len(self.calls)}",
            "fail_list": [e for e in kw.get("external_userid") or [] if e in self.fail],
        }


def service(engine, clock, wecom=None, **kw):
    return CampaignService(engine, policy(**kw), wecom=wecom, clock=clock)


def ledger(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(MassSend)).scalar()


def test_preview_shows_exactly_gold_and_above_with_consent_and_why_others_are_out(demo, clock):
    s = service(demo, clock)
    preview = s.preview(s.create(MEMBER_DAY, actor="t"))
    assert {r["sender_id"] for r in preview["recipient_list"]} == set(GOLD)
    assert preview["left_out"] == {"no_consent": 1}
    reasons = {r["sender_id"]: r["reason"] for r in preview["left_out_list"]}
    assert reasons == {
        "demo-sun": "no_consent",
        "demo-wang": "outside_segment",
        "demo-zhao": "outside_segment",
        "wecom:wm_guest_002": "outside_segment",
    }
    texts = {t["sender_id"]: t["text"] for t in preview["samples"]}
    assert texts["demo-lin"].startswith("林晓您好！今天是金卡会员日，积分12800")


def test_preview_in_quiet_hours_evaluates_when_it_will_go_out(demo, clock):
    clock.now = at(0, 23)
    s = service(demo, clock)
    preview = s.preview(s.create(MEMBER_DAY, actor="t"))
    assert preview["held_by_quiet_hours"] is True
    assert preview["evaluated_at"] == at(1, 8).isoformat()
    assert preview["recipients"] == 3


@pytest.mark.parametrize(
    "change, words",
    [
        ({"template": "{{ name }}\n{{ vip_level }}"}, "template line 2: unknown variable"),
        ({"segment": {"tier_at_least": "黑卡"}}, "unknown tier"),
        ({"surface": "sms"}, "surface"),
        ({"attachments": [{"msgtype": "video", "video": {"media_id": "x"}}]}, "msgtype"),
        ({"attachments": [{"msgtype": "link", "link": {"title": "t"}}]}, "link needs url"),
        ({"schedule": "next tuesday"}, "schedule"),
        ({"name": ""}, "name"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_creation_refuses_what_would_fail_later(demo, clock, change, words):
    with pytest.raises(CampaignError) as info:
        service(demo, clock).create({**MEMBER_DAY, **change}, actor="t")
    assert words in str(info.value)
    with demo.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM campaigns").scalar() == 0


async def test_opt_out_after_scheduling_gets_nothing(demo, clock):
    api = RecordingAPI()
    s = service(demo, clock, api)
    campaign = s.create(MEMBER_DAY, actor="t")
    PrivacyService(CRMStore(demo)).unsubscribe("demo-lin")  # 退订 between schedule and send
    result = await s.send(campaign)
    sent_to = [e for call in api.calls for e in call["external_userid"]]
    assert sorted(sent_to) == sorted(["wm_demo_chen", "wm_guest_001"])
    assert result["left_out"] == {"no_consent": 2}


async def test_cap_boundary_nth_and_next_and_the_months_turn(demo, clock):
    api = RecordingAPI()
    clock.now = at(29, 10)  # 30 December
    s = service(demo, clock, api, cap=2)
    first = await s.send(s.create(MEMBER_DAY, actor="t"))
    second = await s.send(s.create(MEMBER_DAY, actor="t"))  # the 2nd of the month: allowed
    assert first["queued"] == second["queued"] == 3
    third = await s.send(s.create(MEMBER_DAY, actor="t"))  # the 3rd: over the cap
    assert third["queued"] == 0 and third["left_out"] == {"no_consent": 1, "over_cap": 3}
    assert len(api.calls) == 6
    clock.now = at(31, 10)  # 1 January: a new month, a new allowance
    fourth = await s.send(s.create(MEMBER_DAY, actor="t"))
    assert fourth["queued"] == 3


async def test_weekly_and_daily_caps(demo, clock):
    api = RecordingAPI()
    s = service(demo, clock, api, cap=Cap("day", 1))
    assert (await s.send(s.create(MEMBER_DAY, actor="t")))["queued"] == 3
    assert (await s.send(s.create(MEMBER_DAY, actor="t")))["queued"] == 0
    clock.now += dt.timedelta(days=1)
    assert (await s.send(s.create(MEMBER_DAY, actor="t")))["queued"] == 3


async def test_send_in_quiet_hours_waits_and_sends_nothing(demo, clock):
    api = RecordingAPI()
    clock.now = at(0, 23)
    s = service(demo, clock, api)
    campaign = s.create(MEMBER_DAY, actor="t")
    result = await s.send(campaign)
    assert result["sent"] is False and "quiet hours" in result["why"] and api.calls == []
    assert s.get(campaign)["scheduled_at"] == at(1, 8).isoformat()
    clock.now = at(1, 8, 5)
    assert (await s.send_due())[0]["queued"] == 3


async def test_a_sent_campaign_is_not_sent_again(demo, clock):
    api = RecordingAPI()
    s = service(demo, clock, api)
    campaign = s.create(MEMBER_DAY, actor="t")
    await s.send(campaign)
    again = await s.send(campaign)
    assert again == {"campaign": campaign, "sent": False, "status": "sent", "why": "already sent"}
    assert len(api.calls) == 3


async def test_wecom_refusals_and_errors_give_cap_slots_back(demo, clock):
    refused = RecordingAPI(fail={"wm_demo_chen"})
    s = service(demo, clock, refused, cap=1)
    result = await s.send(s.create(MEMBER_DAY, actor="t"))
    assert result["not_contact"] == 1 and ledger(demo) == 2  # chen's slot given back

    broken = RecordingAPI(error=WeComAPIError(40058, "invalid", "/x"))
    s = service(demo, clock, broken)
    result = await s.send(s.create(MEMBER_DAY, actor="t"))
    assert result["failed"] == 3 and ledger(demo) == 2

    timeout = RecordingAPI(error=TransportError("timeout", "/x"))
    s = service(demo, clock, timeout)
    campaign = s.create(MEMBER_DAY, actor="t")
    result = await s.send(campaign)
    # WeCom may have the task: recorded as unknown, the slot kept, and never sent again
    assert result["unknown"] == 3 and ledger(demo) == 5
    assert (await s.send(campaign))["sent"] is False and len(timeout.calls) == 3


async def test_at_most_10000_customers_per_call(engine, clock):
    """One advisor, one text (no per-guest variables): 10,001 guests make two calls."""
    from bot.crm import models as m

    with engine.begin() as conn:
        conn.execute(
            m.Guest.__table__.insert(),
            [
                {
                    "sender_id": f"g{i}",
                    "tier": "金卡",
                    "wecom_external_userid": f"wm{i}",
                    "owner_userid": "advisor_li",
                    "points": 0,
                    "is_demo": False,
                    "created_at": clock.now,
                    "updated_at": clock.now,
                }
                for i in range(10_001)
            ],
        )
        ids = [r[0] for r in conn.execute(select(m.Guest.id))]
        conn.execute(
            m.Consent.__table__.insert(),
            [
                {"guest_id": i, "purpose": "marketing", "granted": True, "created_at": clock.now}
                for i in ids
            ],
        )
    api = RecordingAPI()
    s = service(engine, clock, api)
    result = await s.send(s.create({**MEMBER_DAY, "template": "会员日快乐"}, actor="t"))
    assert [len(c["external_userid"]) for c in api.calls] == [10_000, 1]
    assert result["queued"] == 10_001


async def test_full_loop_through_the_sandbox(demo, clock, sandbox, wecom):
    base, state, http = sandbox
    s = service(demo, clock, wecom, cap=1)
    campaign = s.create(
        {
            **MEMBER_DAY,
            "attachments": [
                {"msgtype": "link", "link": {"title": "会员日", "url": "https://example.com/md"}}
            ],
        },
        actor="t",
    )
    result = await s.send(campaign)
    assert result["tasks"] == 3 and result["queued"] == 3
    calls = [
        c["body"] for c in state.calls if c["path"] == "/cgi-bin/externalcontact/add_msg_template"
    ]
    by_id = {c["external_userid"][0]: c for c in calls}
    assert set(by_id) == set(GOLD.values())
    assert by_id["wm_demo_lin"]["text"]["content"].startswith("林晓您好")
    assert by_id["wm_demo_chen"]["sender"] == "advisor_zhou"
    assert by_id["wm_demo_lin"]["attachments"][0]["msgtype"] == "link"

    tasks = (await (await http.get(f"{base}/_sandbox/groupmsg")).json())["tasks"]
    lin_task = next(t for t in tasks if t["results"][0]["external_userid"] == "wm_demo_lin")
    confirm = await http.post(
        f"{base}/_sandbox/groupmsg/confirm",
        json={"msgid": lin_task["msgid"], "userid": "advisor_li"},
    )
    assert (await confirm.json())["sent"] == 1

    report = await s.report(campaign)
    assert report["recipients"] == {"left_out": 1, "queued": 2, "sent": 1}
    assert report["advisors"]["advisor_li"] == {"tasks": 2, "confirmed": 1, "all_confirmed": False}
    assert all(t["listed_by_wecom"] for t in report["tasks"])

    for _ in range(3):
        assert len((await s.remind(campaign))["reminded"]) == 2
    fourth = await s.remind(campaign)
    assert fourth["reminded"] == [] and len(fourth["skipped"]) == 2

    cancelled = await s.cancel(campaign, actor="t")
    assert cancelled["tasks_cancelled"] == 2
    assert ledger(demo) == 1  # only lin, who got it, still counts against the cap
    report = await s.report(campaign)
    assert report["recipients"] == {"left_out": 1, "cancelled": 2, "sent": 1}

    # Again this month with the cap at 1: lin, who got it, is over the cap; the two whose
    # tasks were cancelled never received it and may get this one.
    again = await s.send(s.create(MEMBER_DAY, actor="t"))
    assert again["queued"] == 2 and again["left_out"] == {"no_consent": 1, "over_cap": 1}


async def test_wecom_own_monthly_limit_shows_in_the_report(demo, clock, sandbox, wecom):
    base, state, http = sandbox
    await http.post(f"{base}/_sandbox/groupmsg/settings", json={"monthly_limit": 1})
    s = service(demo, clock, wecom)  # our cap is laxer than the admin's setting in WeCom
    ids = [s.create(MEMBER_DAY, actor="t") for _ in range(2)]
    for campaign in ids:
        await s.send(campaign)
    tasks = (await (await http.get(f"{base}/_sandbox/groupmsg")).json())["tasks"]
    for task in tasks:
        for userid in task["advisors"]:
            await http.post(
                f"{base}/_sandbox/groupmsg/confirm", json={"msgid": task["msgid"], "userid": userid}
            )
    second = await s.report(ids[1])
    assert second["recipients"] == {"left_out": 1, "limit": 3}


async def test_cancel_a_scheduled_campaign_sends_nothing(demo, clock):
    api = RecordingAPI()
    s = service(demo, clock, api)
    campaign = s.create({**MEMBER_DAY, "schedule": "2026-12-08T10:00:00+08:00"}, actor="t")
    assert (await s.send_due()) == []  # not due yet
    assert (await s.cancel(campaign, actor="t"))["cancelled"] is True
    clock.now = at(10)
    assert (await s.send_due()) == [] and api.calls == []
    with demo.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CampaignRecipient)).scalar() == 0


class KfAPI(RecordingAPI):
    def __init__(self):
        super().__init__()
        self.kf = []

    async def kf_text(self, open_kfid, external_userid, text, dedupe_key):
        from bot.wecom.api.client import SendResult

        self.kf.append((open_kfid, external_userid, text, dedupe_key))
        return SendResult("sent")


async def test_group_surface_sends_per_owner_and_caps_each_group(demo, clock):
    api = RecordingAPI()
    s = service(demo, clock, api, cap=1)
    spec = {
        **MEMBER_DAY,
        "surface": "group",
        "template": "{{ name }}好，今晚会员日抽奖！",
        "groups": {"advisor_li": ["wrA", "wrB"], "advisor_zhou": ["wrC"]},
    }
    first = await s.send(s.create(spec, actor="t"))
    assert first["tasks"] == 2 and first["queued"] == 3
    assert sorted((c["sender"], tuple(c["chat_id_list"])) for c in api.calls) == [
        ("advisor_li", ("wrA", "wrB")),
        ("advisor_zhou", ("wrC",)),
    ]
    assert (
        api.calls[0]["text"] == "各位好，今晚会员日抽奖！" and api.calls[0]["chat_type"] == "group"
    )
    preview = s.preview(s.create(spec, actor="t"))
    assert preview["recipients"] == 0 and preview["left_out"] == {"over_cap": 3}
    with pytest.raises(CampaignError, match="groups"):
        s.create({**MEMBER_DAY, "surface": "group"}, actor="t")


async def test_kf_surface_only_inside_the_48_hour_window(demo, clock):
    from bot.wecom.models import KfQuota

    with demo.begin() as conn:  # 周敏 wrote to 微信客服 an hour ago
        conn.execute(
            KfQuota.__table__.insert(),
            [
                {
                    "open_kfid": "wk_sandbox_concierge",
                    "external_userid": "wm_guest_001",
                    "last_guest_msg_at": clock.now - dt.timedelta(hours=1),
                    "sent_count": 0,
                }
            ],
        )
    api = KfAPI()
    s = service(demo, clock, api)
    campaign = s.create({**MEMBER_DAY, "surface": "kf"}, actor="t")
    preview = s.preview(campaign)
    assert [r["sender_id"] for r in preview["recipient_list"]] == ["kf:wm_guest_001"]
    assert preview["left_out"] == {"no_consent": 1, "no_wecom_identity": 2}
    result = await s.send(campaign)
    assert [k[1] for k in api.kf] == ["wm_guest_001"] and api.calls == []
    assert result["queued"] == 1
    clock.now += dt.timedelta(hours=48)  # the window has closed
    later = s.preview(s.create({**MEMBER_DAY, "surface": "kf"}, actor="t"))
    assert later["recipients"] == 0 and later["left_out"]["outside_48h_window"] == 1


async def test_orders_and_replies_after_the_send_are_attributed(demo, clock):
    from bot.wecom.models import InboxMessage

    api = RecordingAPI()
    clock.now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)  # orders use real time
    s = service(demo, clock, api, quiet_from=None, quiet_to=None)
    campaign = s.create(MEMBER_DAY, actor="t")
    await s.send(campaign)
    before = (await s.report(campaign, refresh=False))["attribution"]
    store = CRMStore(demo)
    store.create_order("demo-lin", item="spa")  # an hour after the send
    store.create_order("demo-sun", item="spa")  # left out: not attributed
    with demo.begin() as conn:
        conn.execute(
            InboxMessage.__table__.insert(),
            [
                {
                    "dedupe_key": "k1",
                    "surface": "kf",
                    "sender_id": "kf:wm_guest_001",
                    "kind": "text",
                    "payload": {},
                    "status": "done",
                    "attempts": 1,
                    "received_at": clock.now + dt.timedelta(hours=2),
                }
            ],
        )
    report = await s.report(campaign, refresh=False)
    assert report["attribution"] == {"days": 7, "replies": 1, "orders": before["orders"] + 1}
    assert before["replies"] == 0


async def test_the_worker_sends_due_campaigns_and_survives_an_outage(demo, clock, caplog):
    from bot.marketing.runtime import run_worker

    class Broken:
        async def send_due(self, worker_id=None):
            raise RuntimeError("database went away")

    class Marketing:
        campaigns = Broken()
        touchpoints = None

    await run_worker(Marketing(), once=True)  # logged, not raised
    assert "marketing worker round failed" in caplog.text

    api = RecordingAPI()
    s = service(demo, clock, api)
    s.create(
        {**MEMBER_DAY, "schedule": (clock.now + dt.timedelta(minutes=5)).isoformat()}, actor="t"
    )

    class Quiet:
        runs = 0

        async def run(self):
            Quiet.runs += 1
            return {"sent": [], "skipped": [], "deferred": []}

    class Real:
        campaigns = s
        touchpoints = Quiet()

    await run_worker(Real(), once=True)
    assert api.calls == []  # not due yet
    clock.now += dt.timedelta(minutes=6)
    await run_worker(Real(), once=True)
    assert len(api.calls) == 3
    assert Quiet.runs == 2  # each fresh worker runs the touchpoints on its first round

    ticks = iter([0.0, 10.0, 20.0, 400.0])
    stop_after = {"n": 0}

    class Counting(Real):
        class campaigns:  # noqa: N801 (a stand-in namespace)
            @staticmethod
            async def send_due(worker_id=None):
                stop_after["n"] += 1
                if stop_after["n"] == 5:
                    raise asyncio.CancelledError
                return []

    with pytest.raises(asyncio.CancelledError):
        await run_worker(
            Counting(), poll_s=0.0, touchpoints_every_s=300, monotonic=lambda: next(ticks)
        )
    assert Quiet.runs == 2 + 2  # at 0 s and at 400 s, not at 10 s or 20 s

"""Photos and voice from 微信客服 guests, through the real channel and the sandbox: the photo is
downloaded with media/get, kept, linked on the open complaint and shown on the card and the case
page; a voice message reaches the advisor who holds the guest's case as audio, with a note."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from bot.crm.store import CRMStore
from connectors.wecom import WeComInput  # noqa: F401  (Sanic sets its loop policy on import)
from bot.settings import PROJECT_ROOT, get_settings
from tests.wecom.helpers import kf_texts

FAST_POLICY = PROJECT_ROOT / "tests" / "fixtures" / "sla_policy_fast.yml"
JPEG = b"\xff\xd8\xff\xe0" + b"sandbox-photo-of-a-dirty-sheet" + b"\xff\xd9"


@pytest.fixture
def media_env(monkeypatch, tmp_path, db_url):
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("SLA_POLICY_FILE", str(FAST_POLICY))
    get_settings.cache_clear()
    crm = CRMStore(db_url)
    yield crm
    crm.close()


def complain(crm, sender, text="床单上有头发，卫生间也有异味"):
    from bot.complaints.service import ComplaintService
    from bot.handoff import HandoffService

    crm.get_or_create_guest(sender, name="林晓")
    ComplaintService(crm, HandoffService(crm)).triage(sender, text)
    return crm.tickets(sender)[0]


async def test_a_photo_is_kept_and_linked_to_the_open_complaint(media_env, connector, tmp_path):
    crm = media_env
    ticket = complain(crm, "kf:wm_photo")
    await connector.post(
        "/_sandbox/guest/kf",
        {
            "external_userid": "wm_photo",
            "msgtype": "image",
            "content_base64": base64.b64encode(JPEG).decode(),
            "content_type": "image/jpeg",
        },
    )
    await connector.idle()
    [media] = crm.ticket_media(ticket.id)
    assert (media.kind, media.content_type, media.size) == ("image", "image/jpeg", len(JPEG))
    assert (tmp_path / "media" / media.path).read_bytes() == JPEG
    [get] = await connector.env.calls("/cgi-bin/media/get")
    assert get["query"]["media_id"] == media.wecom_media_id
    assert kf_texts(await connector.env.calls())[-1].startswith("收到您的照片")
    assert f"投诉 {ticket.id}" in kf_texts(await connector.env.calls())[-1]
    assert connector.rasa.messages == []  # not passed to the NLU as text


async def test_the_card_and_the_case_page_show_the_photo(media_env, connector, db_url):
    from bot.paging.case_pages import CasePages
    from bot.paging.context import GuestContext
    from bot.paging.links import CaseLinks
    from bot.paging.pager import RecordingMessenger
    from bot.paging.policy import load_policy
    from bot.paging.service import PagingService
    from bot.paging.store import PagingStore
    from bot.paging.worker import PagingWorker

    crm = media_env
    ticket = complain(crm, "kf:wm_photo2")
    await connector.post("/_sandbox/guest/kf", {"external_userid": "wm_photo2", "msgtype": "image"})
    await connector.idle()
    [media] = crm.ticket_media(ticket.id)

    paging, policy, messenger = PagingStore(db_url), load_policy(FAST_POLICY), RecordingMessenger()
    links = CaseLinks("a-test-secret-that-is-long-enough-0123456789", 3600)
    worker = PagingWorker(
        paging, policy, messenger, context=GuestContext(crm), worker_id="w", links=links
    )
    await worker.tick()
    case = paging.clock_for("ticket", ticket.id)
    [card] = [m for m in messenger.sent if m.get("msgtype") == "textcard"]
    assert "客人附件：照片 1 张" in card["description"]

    channel = CasePages(PagingService(paging, policy, messenger, crm=crm), links)
    sig = links.sign(case.id, card["to"])
    page = await channel.case_page(case.id, sig)
    assert page.status == 200
    assert f"/webhooks/paging/cases/{case.id}/media/{media.id}?sig=" in page.body.decode()
    got = await channel.case_media(case.id, media.id, sig)
    assert got.status == 200 and got.body == base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    assert "media.view" in {a.action for a in crm.audit_entries()}
    # a forged link, or a media id of another case, opens nothing
    assert (await channel.case_media(case.id, media.id, sig[:-1] + "x")).status == 403
    assert (await channel.case_media(case.id, media.id + 999, sig)).status == 404
    paging.close()


async def test_a_photo_without_a_complaint_is_kept_and_answered_as_before(media_env, connector):
    crm = media_env
    crm.get_or_create_guest("kf:wm_snap")
    await connector.post("/_sandbox/guest/kf", {"external_userid": "wm_snap", "msgtype": "image"})
    await connector.idle()
    assert "转人工" in kf_texts(await connector.env.calls())[-1]  # the usual polite answer


async def test_a_media_outage_still_answers_the_guest(media_env, connector):
    crm = media_env
    ticket = complain(crm, "kf:wm_outage")
    await connector.post("/_sandbox/faults", {"path": "/cgi-bin/media/get", "errcode": 40007})
    await connector.post("/_sandbox/guest/kf", {"external_userid": "wm_outage", "msgtype": "image"})
    await connector.idle()
    assert crm.ticket_media(ticket.id) == []
    assert "收到您的图片" in kf_texts(await connector.env.calls())[-1]


async def test_voice_goes_to_the_advisor_holding_the_case_as_audio(media_env, connector, db_url):
    from bot.paging.store import PagingStore

    crm = media_env
    ticket = complain(crm, "kf:wm_voice")
    paging = PagingStore(db_url)
    from bot.paging.clocks import plan_clock
    from bot.paging.policy import load_policy

    info = paging.subject("ticket", ticket.id, dt.datetime.now(dt.timezone.utc))
    clock, _ = paging.create_clock(
        info, plan_clock(load_policy(FAST_POLICY), info.sla_class, info.created_at)
    )
    paging.acknowledge(clock.id, "advisor_zhou", dt.datetime.now(dt.timezone.utc))
    await connector.post("/_sandbox/guest/kf", {"external_userid": "wm_voice", "msgtype": "voice"})
    await connector.idle()
    [upload] = await connector.env.calls("/cgi-bin/media/upload")
    assert upload["query"]["type"] == "voice"
    sends = [
        c["body"]
        for c in await connector.env.calls("/cgi-bin/message/send")
        if c.get("errcode") == 0
    ]
    assert [s["msgtype"] for s in sends] == ["voice", "text"]
    assert all(s["touser"] == "advisor_zhou" for s in sends)
    assert "语音" in sends[1]["text"]["content"] and f"#{clock.id}" in sends[1]["text"]["content"]
    assert "周顾问" in kf_texts(await connector.env.calls())[-1]
    [voice] = [m for m in crm.ticket_media(ticket.id) if m.kind == "voice"]
    assert voice.content_type == "audio/amr"
    paging.close()

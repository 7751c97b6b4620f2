"""The Rasa-side glue: without a WeCom channel nothing is attached; the guest hook stores ratings
and passes everything else on to Rasa."""
from __future__ import annotations

from types import SimpleNamespace

from bot.paging.channel import PagingChannel, attach, guest_hook


class _Out:
    def __init__(self):
        self.sent = []

    async def send_text_message(self, recipient, text, **kwargs):
        self.sent.append((recipient, text))


class _Service:
    def __init__(self, thanks=None):
        self.thanks = thanks
        self.forwarded = []

    async def maybe_record_rating(self, sender, text):
        return self.thanks if text == "5" else None

    async def forward_guest_message(self, sender, text):
        self.forwarded.append((sender, text))
        return True


async def test_hook_stores_ratings_and_passes_the_rest_on():
    passed = []

    async def rasa(message):
        passed.append(message.text)

    service = _Service(thanks="谢谢")
    hook = guest_hook(service, rasa)
    out = _Out()
    await hook(SimpleNamespace(text="5", sender_id="kf:g", output_channel=out))
    await hook(SimpleNamespace(text="还有问题", sender_id="kf:g", output_channel=out))
    await hook(SimpleNamespace(text="/greet", sender_id="kf:g", output_channel=out))
    assert out.sent == [("kf:g", "谢谢")]
    assert passed == ["还有问题", "/greet"]
    assert service.forwarded == [("kf:g", "还有问题")]


def test_attach_without_a_wecom_channel_does_nothing(caplog):
    app = SimpleNamespace(ctx=SimpleNamespace(input_channels=[PagingChannel()]))
    assert attach(app, service=_Service()) is None
    assert "no WeCom channel" in caplog.text
    assert PagingChannel.name() == "paging"


async def test_case_page_needs_the_signature_and_shows_the_case(crm, paging, policy, messenger, clock, make_worker):
    from bot.paging.links import CaseLinks
    from bot.paging.service import PagingService
    from tests.paging.conftest import complaint, new_guest

    sender = new_guest(crm)
    ticket = complaint(crm, sender)
    clock.set(ticket.created_at)
    await make_worker().tick()
    case = paging.clock_for("ticket", ticket.id)
    channel = PagingChannel()
    channel.service = PagingService(paging, policy, messenger, crm=crm, clock=clock)
    links = CaseLinks.from_settings()
    assert (await channel.case_page(case.id, "forged")).status == 403
    assert (await channel.case_page(999, links.sign(999, "advisor_li"))).status == 404
    page = await channel.case_page(case.id, links.sign(case.id, "advisor_li"))
    body = page.body.decode()
    assert page.status == 200 and f"#{case.id} 普通投诉" in body and "林晓" in body
    assert "房间有很重的烟味" in body and f"接单 {case.id}" in body and "page" in body
    assert "海鲜过敏" not in body
    [view] = crm.audit_entries(action="case.view")
    assert view.actor == "advisor:advisor_li" and view.detail["case"] == case.id

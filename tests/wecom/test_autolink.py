"""A first-time WeCom guest whose contact data names a booking profile is linked to it
(externalcontact/get through the sandbox: remark_mobiles, unionid)."""

from __future__ import annotations

import datetime as dt

from bot.bookings.autolink import AutoLinker
from bot.bookings.identity import IdentityLinker
from bot.crm.store import CRMStore
from bot.wecom.externalcontact import get_contact
from tests.wecom.helpers import post_json


async def _profile(engine):
    store = CRMStore(engine)
    store.get_or_create_guest("guest:lin", name="林晓", phone="13800138000")
    store.add_booking(
        "guest:lin",
        property_id="sanya-haitang-resort",
        city="三亚",
        check_in=dt.date(2030, 1, 5),
        check_out=dt.date(2030, 1, 8),
        confirmation_no="HT1",
    )
    return store


async def test_remark_mobile_links_and_unionid_is_read(env):
    services = env.services()
    store = await _profile(services.db.engine)
    await post_json(
        env.http,
        f"{env.sandbox}/_sandbox/externalcontact",
        {
            "external_userid": "wmLIN",
            "name": "林",
            "unionid": "ou_lin",
            "follow_user": [{"userid": "advisor_zhou", "remark_mobiles": ["+86 138 0013 8000"]}],
        },
    )
    contact = await get_contact("wmLIN", services=services)
    assert contact.unionid == "ou_lin"
    assert contact.follow_user[0].remark_mobiles == ("+86 138 0013 8000",)

    linker = AutoLinker(
        IdentityLinker(services.db.engine), lambda ext: get_contact(ext, services=services)
    )
    assert await linker.maybe_link("kf:wmLIN", "wmLIN") == "guest:lin"
    assert store.upcoming_bookings("kf:wmLIN", dt.date(2030, 1, 1))[0].confirmation_no == "HT1"
    assert await linker.maybe_link("kf:wmLIN", "wmLIN") is None  # linked already: no new call
    assert len(await env.calls("/cgi-bin/externalcontact/get")) == 2


async def test_nobody_s_contact_or_wecom_down_links_nothing(env):
    services = env.services()
    await _profile(services.db.engine)
    linker = AutoLinker(
        IdentityLinker(services.db.engine), lambda ext: get_contact(ext, services=services)
    )
    assert await linker.maybe_link("kf:wmX", "wmX") is None  # 84061: not a contact

    async def down(ext):
        raise RuntimeError("WeCom unreachable")

    assert (
        await AutoLinker(IdentityLinker(services.db.engine), down).maybe_link("kf:wmY", "wmY")
        is None
    )

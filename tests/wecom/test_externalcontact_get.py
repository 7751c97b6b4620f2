"""externalcontact/get through the client against the sandbox: the advisors who hold a guest
(every follow_user page), "nobody's contact" told apart from "could not ask", and mark_tag refused
for a member who does not hold the contact, as WeCom does."""

from __future__ import annotations

import pytest

from bot.wecom.errors import TransportError, WeComAPIError
from bot.wecom.externalcontact import get_contact, mark_tag
from tests.wecom.helpers import post_json


async def seed(env, ext, follow, name="王女士"):
    return await post_json(
        env.http,
        f"{env.sandbox}/_sandbox/externalcontact",
        {"external_userid": ext, "name": name, "follow_user": follow},
    )


async def test_contact_and_its_advisors(env):
    await seed(
        env,
        "wm_wang",
        [{"userid": "advisor_zhou", "createtime": 1700000000, "remark": "王姐"}, "advisor_li"],
    )
    contact = await get_contact("wm_wang", services=env.services())
    assert contact is not None and contact.name == "王女士"
    assert contact.follow_userids == ["advisor_zhou", "advisor_li"]
    assert (
        contact.follow_user[0].createtime == 1700000000 and contact.follow_user[0].remark == "王姐"
    )
    [call] = await env.calls("/cgi-bin/externalcontact/get")
    assert call["method"] == "GET" and call["query"]["external_userid"] == "wm_wang"


async def test_every_follow_user_page_is_read(env):
    await seed(env, "wm_popular", [f"advisor_{i}" for i in range(1203)])
    contact = await get_contact("wm_popular", services=env.services())
    assert len(contact.follow_user) == 1203 and contact.follow_userids[-1] == "advisor_1202"
    assert len(await env.calls("/cgi-bin/externalcontact/get")) == 3  # 500 + 500 + 203


async def test_a_guest_nobody_holds_is_none(env):
    assert await get_contact("wm_kf_only_guest", services=env.services()) is None
    [call] = await env.calls("/cgi-bin/externalcontact/get")
    assert call["errcode"] == 84061


async def test_wecom_down_is_an_error_not_none(env):
    await seed(env, "wm_wang", ["advisor_zhou"])
    await post_json(
        env.http,
        f"{env.sandbox}/_sandbox/faults",
        {"path": "/cgi-bin/externalcontact/get", "status": 503, "times": 5},
    )
    with pytest.raises(TransportError):
        await get_contact("wm_wang", services=env.services(retries=2))


async def test_no_app_secret_is_an_error(env):
    services = env.services()
    services.app_client = None  # what WeComServices builds when WECOM_APP_SECRET is unset
    with pytest.raises(WeComAPIError):
        await get_contact("wm_wang", services=services)


async def test_seeding_refuses_bad_input(env):
    async with env.http.post(
        f"{env.sandbox}/_sandbox/externalcontact",
        json={"external_userid": "wm_x", "follow_user": []},
    ) as resp:
        assert resp.status == 400
    async with env.http.post(
        f"{env.sandbox}/_sandbox/externalcontact",
        json={"external_userid": "wm_x", "follow_user": [{"remark": "x"}]},
    ) as resp:
        assert resp.status == 400


async def test_mark_tag_by_a_member_who_does_not_hold_the_contact_is_refused(env):
    await seed(env, "wm_wang", ["advisor_zhou"])
    services = env.services()
    assert (await mark_tag("advisor_zhou", "wm_wang", add_tag=["et1"], services=services)).ok
    refused = await mark_tag("advisor_fixed_owner", "wm_wang", add_tag=["et1"], services=services)
    assert not refused.ok and refused.errcode == 84061
    assert [t["userid"] for t in env.state.tags] == ["advisor_zhou"]


async def test_mass_sending_contact_lists_count_as_holders(env):
    """The sandbox has one truth about who holds whom: the lists set for 客户群发 too."""
    await post_json(
        env.http,
        f"{env.sandbox}/_sandbox/contacts",
        {"userid": "advisor_li", "external_userid": ["wm_mass"]},
    )
    contact = await get_contact("wm_mass", services=env.services())
    assert contact.follow_userids == ["advisor_li"]

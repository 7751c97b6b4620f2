"""Preference tags mirrored to WeCom corp tags: ids from the configured library, marked through
the advisor who holds the guest (externalcontact/get follow_user), unknown tags and guests
nobody holds skipped, the flow untouched when WeCom fails."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from bot.preferences.mirror import CorpTag
from bot.settings import PROJECT_ROOT
from bot.wecom.externalcontact import ExternalContact, FollowUser
from bot.wecom.tag_mirror import WeComTagMirror, mirror_from_env
from tests.wecom.helpers import post_json

LIBRARY = PROJECT_ROOT / "data" / "wecom_corp_tags.yml"


def recording(holders=None):
    """Fake WeCom: `holders` maps external_userid -> [(userid, createtime)]."""
    calls = []

    async def mark_tag(userid, external_userid, add_tag=(), remove_tag=()):
        calls.append((userid, external_userid, list(add_tag), list(remove_tag)))

    async def get_contact(external_userid):
        follow = (holders or {}).get(external_userid)
        if follow is None:
            return None
        return ExternalContact(external_userid, "", tuple(FollowUser(u, t) for u, t in follow))

    return calls, dict(mark_tag=mark_tag, get_contact=get_contact)


def test_tags_are_marked_through_the_advisor_who_holds_the_guest():
    calls, fakes = recording(
        {"wm_guest_001": [("advisor_li", 1700000500), ("advisor_wu", 1700000100)]}
    )
    mirror = WeComTagMirror.from_file(LIBRARY, **fakes)
    mirror.sync(
        "wm_guest_001",
        add=[CorpTag("出行目的", "纪念日"), CorpTag("兴趣", "潜水")],
        remove=[CorpTag("出行目的", "蜜月")],
    )
    # the file prefers advisor_zhou, who does not hold this guest: the first to add them does
    assert calls == [
        (
            "advisor_wu",
            "wm_guest_001",
            ["etSANDBOX_purpose_anniversary", "etSANDBOX_interest_diving"],
            ["etSANDBOX_purpose_honeymoon"],
        )
    ]


def test_the_preferred_owner_is_used_when_they_hold_the_guest():
    calls, fakes = recording({"wm_g": [("advisor_li", 1), ("advisor_zhou", 2)]})
    WeComTagMirror.from_file(LIBRARY, **fakes).sync(
        "wm_g", add=[CorpTag("兴趣", "潜水")], remove=[]
    )
    assert [c[0] for c in calls] == ["advisor_zhou"]


def test_a_guest_nobody_holds_is_not_tagged():
    calls, fakes = recording({})
    WeComTagMirror.from_file(LIBRARY, **fakes).sync(
        "wm_kf_only", add=[CorpTag("兴趣", "潜水")], remove=[]
    )
    assert calls == []


def test_tags_missing_from_the_library_are_not_sent():
    calls, fakes = recording({"wm_guest_001": [("advisor_li", 1)]})
    mirror = WeComTagMirror.from_file(LIBRARY, **fakes)
    mirror.sync("wm_guest_001", add=[CorpTag("床型", "大床")], remove=[])
    assert calls == []


def test_mirroring_is_off_without_a_file_and_a_bad_file_is_refused(tmp_path):
    assert mirror_from_env(None) is None
    bad = tmp_path / "tags.yml"
    bad.write_text("owner_userid: x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="groups"):
        WeComTagMirror.from_file(bad)
    no_owner = tmp_path / "ok.yml"
    no_owner.write_text("groups: {兴趣: {潜水: et1}}\n", encoding="utf-8")
    assert WeComTagMirror.from_file(no_owner).owner_userid is None


def test_pick_owner_with_no_follow_user():
    mirror = WeComTagMirror(tag_ids={})
    assert mirror.pick_owner(SimpleNamespace(follow_user=())) is None


async def test_preference_flow_mirrors_through_the_sandbox_via_the_contacts_owner(
    env, db_url, tmp_path
):
    """The real chain: PreferenceService -> mirror -> externalcontact/get -> mark_tag, in the
    sandbox, which refuses mark_tag by an advisor who does not hold the contact (as WeCom)."""
    from bot.crm.db import upgrade
    from bot.crm.store import CRMStore
    from bot.flows import build_flows

    crm_url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(crm_url)
    store = CRMStore(crm_url)
    store.get_or_create_guest("kf:wm_x", kf_external_userid="wm_x", wecom_external_userid="wm_x")
    store.get_or_create_guest("kf:wm_kf_only", kf_external_userid="wm_kf_only")
    await post_json(
        env.http,
        f"{env.sandbox}/_sandbox/externalcontact",
        {"external_userid": "wm_x", "follow_user": ["advisor_li"]},
    )
    flows = build_flows(
        store, mirror=WeComTagMirror.from_file(LIBRARY), spool_file=tmp_path / "spool.jsonl"
    )
    try:
        await asyncio.to_thread(flows.preferences.record, "kf:wm_x", "我们这次是来度蜜月的")
        await asyncio.to_thread(flows.preferences.record, "kf:wm_kf_only", "喜欢潜水")
    finally:
        store.close()
    assert env.state.tags == [
        {
            "userid": "advisor_li",
            "external_userid": "wm_x",
            "add_tag": ["etSANDBOX_purpose_honeymoon"],
            "remove_tag": [],
        }
    ]
    looked_up = [
        c["query"]["external_userid"]  # answered calls (a stale shared token is
        for c in await env.calls("/cgi-bin/externalcontact/get")  # refreshed and retried)
        if c.get("errcode") in (0, 84061)
    ]
    assert looked_up == ["wm_x", "wm_kf_only"]
    check = CRMStore(crm_url)
    assert [t.value for t in check.tags("kf:wm_kf_only")] == ["潜水"]  # kept in the CRM
    check.close()

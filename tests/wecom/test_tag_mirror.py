"""Preference tags mirrored to WeCom corp tags: ids from the configured library, unknown tags
skipped, the flow untouched when WeCom fails."""
from __future__ import annotations

import pytest

from bot.preferences.mirror import CorpTag
from bot.settings import PROJECT_ROOT
from bot.wecom.tag_mirror import WeComTagMirror, mirror_from_env

LIBRARY = PROJECT_ROOT / "data" / "wecom_corp_tags.yml"


def recording():
    calls = []

    async def mark_tag(userid, external_userid, add_tag=(), remove_tag=()):
        calls.append((userid, external_userid, list(add_tag), list(remove_tag)))

    return calls, mark_tag


def test_tags_become_corp_tag_ids_for_the_owning_advisor():
    calls, fake = recording()
    mirror = WeComTagMirror.from_file(LIBRARY, mark_tag=fake)
    mirror.sync("wm_guest_001", add=[CorpTag("出行目的", "纪念日"), CorpTag("兴趣", "潜水")],
                remove=[CorpTag("出行目的", "蜜月")])
    assert calls == [("advisor_zhou", "wm_guest_001",
                      ["etSANDBOX_purpose_anniversary", "etSANDBOX_interest_diving"],
                      ["etSANDBOX_purpose_honeymoon"])]


def test_tags_missing_from_the_library_are_not_sent():
    calls, fake = recording()
    mirror = WeComTagMirror.from_file(LIBRARY, mark_tag=fake)
    mirror.sync("wm_guest_001", add=[CorpTag("床型", "大床")], remove=[])
    assert calls == []


def test_mirroring_is_off_without_a_file_and_a_bad_file_is_refused(tmp_path):
    assert mirror_from_env(None) is None
    bad = tmp_path / "tags.yml"
    bad.write_text("groups: {}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="owner_userid"):
        WeComTagMirror.from_file(bad)


def test_preference_flow_mirrors_through_the_configured_mirror(tmp_path):
    from bot.crm.db import upgrade
    from bot.crm.store import CRMStore
    from bot.flows import build_flows

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    upgrade(url)
    store = CRMStore(url)
    store.get_or_create_guest("kf:wm_x", kf_external_userid="wm_x", wecom_external_userid="wm_x")
    calls, fake = recording()
    flows = build_flows(store, mirror=WeComTagMirror.from_file(LIBRARY, mark_tag=fake),
                        spool_file=tmp_path / "spool.jsonl")
    flows.preferences.record("kf:wm_x", "我们这次是来度蜜月的")
    assert calls and "etSANDBOX_purpose_honeymoon" in calls[0][2]
    store.close()

"""The sandbox's 客户群发 behaves like WeCom: limits, statuses, the advisor's confirmation."""

from __future__ import annotations

import time


BASE = "/cgi-bin/externalcontact/"


async def call(wecom, path, body):
    from bot.wecom.errors import WeComAPIError

    try:
        return await wecom._client.request(BASE + path, body)
    except WeComAPIError as exc:
        return {"errcode": exc.errcode}


async def test_limits_and_statuses(sandbox, wecom):
    base, state, http = sandbox
    await http.post(
        f"{base}/_sandbox/contacts",
        json={"userid": "advisor_li", "external_userid": ["wm1", "wm2"]},
    )
    too_many = await call(
        wecom,
        "add_msg_template",
        {
            "chat_type": "single",
            "sender": "advisor_li",
            "text": {"content": "x"},
            "external_userid": [f"wm{i}" for i in range(10_001)],
        },
    )
    assert too_many["errcode"] == 40058
    bad = await call(
        wecom,
        "add_msg_template",
        {"chat_type": "single", "sender": "advisor_li", "attachments": [{"msgtype": "exe"}]},
    )
    assert bad["errcode"] == 40058
    empty = await call(wecom, "add_msg_template", {"chat_type": "single", "sender": "advisor_li"})
    assert empty["errcode"] == 41048

    made = await call(
        wecom,
        "add_msg_template",
        {
            "chat_type": "single",
            "sender": "advisor_li",
            "text": {"content": "会员日"},
            "external_userid": ["wm1", "wm2", "stranger"],
        },
    )
    assert made["fail_list"] == ["stranger"] and made["msgid"]
    msgid = made["msgid"]
    task = await call(wecom, "get_groupmsg_task", {"msgid": msgid})
    assert task["task_list"] == [{"userid": "advisor_li", "status": 0, "send_time": 0}]
    for _ in range(3):
        assert (await call(wecom, "remind_groupmsg_send", {"msgid": msgid}))["errcode"] == 0
    assert (await call(wecom, "remind_groupmsg_send", {"msgid": msgid}))["errcode"] == 45033

    await http.post(f"{base}/_sandbox/groupmsg/settings", json={"monthly_limit": 1})
    state.extensions["groupmsg"].received[
        ("wm2", time.strftime("%Y-%m", time.gmtime(time.time() + 8 * 3600)))
    ] = 1  # wm2 already had this month's one
    confirm = await http.post(
        f"{base}/_sandbox/groupmsg/confirm", json={"msgid": msgid, "userid": "advisor_li"}
    )
    assert (await confirm.json())["sent"] == 1
    result = await call(wecom, "get_groupmsg_send_result", {"msgid": msgid, "userid": "advisor_li"})
    assert {r["external_userid"]: r["status"] for r in result["send_list"]} == {"wm1": 1, "wm2": 3}
    assert (await call(wecom, "cancel_groupmsg_send", {"msgid": msgid}))["errcode"] == 41063
    assert (
        await http.post(
            f"{base}/_sandbox/groupmsg/confirm", json={"msgid": msgid, "userid": "advisor_li"}
        )
    ).status == 409

    now = int(time.time())
    listed = await call(
        wecom,
        "get_groupmsg_list_v2",
        {"chat_type": "single", "start_time": now - 60, "end_time": now + 60},
    )
    assert [m["msgid"] for m in listed["group_msg_list"]] == [msgid]
    wide = await call(
        wecom,
        "get_groupmsg_list_v2",
        {"chat_type": "single", "start_time": now - 40 * 86400, "end_time": now},
    )
    assert wide["errcode"] == 40058


async def test_group_chats_and_cancel_before_confirmation(sandbox, wecom):
    base, state, http = sandbox
    made = await call(
        wecom,
        "add_msg_template",
        {
            "chat_type": "group",
            "sender": "advisor_li",
            "text": {"content": "群发"},
            "chat_id_list": ["wrA", "wrB"],
        },
    )
    assert (await call(wecom, "cancel_groupmsg_send", {"msgid": made["msgid"]}))["errcode"] == 0
    confirm = await http.post(
        f"{base}/_sandbox/groupmsg/confirm", json={"msgid": made["msgid"], "userid": "advisor_li"}
    )
    assert confirm.status == 409
    no_owner = await call(
        wecom, "add_msg_template", {"chat_type": "group", "text": {"content": "x"}}
    )
    assert no_owner["errcode"] == 40058

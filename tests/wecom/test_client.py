"""The API client against the sandbox: token reuse and refresh, back-off, timeouts, outbox."""

from __future__ import annotations

import pytest

from bot.wecom.errors import TransportError, WeComAPIError
from tests.wecom.helpers import post_json


async def fault(env, **body):
    await post_json(env.http, f"{env.sandbox}/_sandbox/faults", body)


async def test_one_token_for_many_calls(env):
    s = env.services()
    for _ in range(3):
        await s.app.send_text("lisi", "你好")
    calls = await env.calls()
    assert [c["path"] for c in calls].count("/cgi-bin/gettoken") == 1
    assert (
        len([c for c in calls if c["path"] == "/cgi-bin/message/send" and c["errcode"] == 0]) == 3
    )


async def test_expired_token_is_refreshed_once(env):
    s = env.services()
    await s.app.send_text("lisi", "一")
    await post_json(env.http, f"{env.sandbox}/_sandbox/tokens/expire", {})
    result = await s.app.send_text("lisi", "二")
    assert result.ok
    paths = [(c["path"], c.get("errcode")) for c in await env.calls()]
    assert paths[-3:] == [
        ("/cgi-bin/message/send", 42001),
        ("/cgi-bin/gettoken", 0),
        ("/cgi-bin/message/send", 0),
    ]


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_token_errcodes_refresh_once_not_forever(env, errcode):
    s = env.services(retries=1)
    await s.app.send_text("lisi", "warm up")
    await fault(env, path="/cgi-bin/message/send", errcode=errcode, times=5)
    with pytest.raises(WeComAPIError) as info:
        await s.app_client.call(
            "/cgi-bin/message/send",
            {"touser": "lisi", "msgtype": "text", "agentid": 1000002, "text": {"content": "x"}},
        )
    assert info.value.errcode == errcode
    sends = [c for c in await env.calls() if c["path"] == "/cgi-bin/message/send"]
    assert len(sends) == 1 + 2  # warm-up, then the call and exactly one retry after a refresh


async def test_rate_limit_45009_backs_off_and_retries(env):
    s = env.services()
    await fault(env, path="/cgi-bin/message/send", errcode=45009, times=2)
    result = await s.app.send_text("lisi", "稍后")
    assert result.ok
    assert env.sleeps.waits[:2] == [2.0, 4.0]  # exponential back-off, longer for 45009


async def test_timeout_is_a_transport_error_and_retried(env):
    s = env.services(timeout_s=0.3, retries=2)
    await fault(env, path="/cgi-bin/kf/service_state/get", delay_s=1.0, times=1)
    data = await s.kf_client.call(
        "/cgi-bin/kf/service_state/get",
        {"open_kfid": env.state.open_kfid, "external_userid": "wm1"},
    )
    assert data["service_state"] == 4
    await fault(env, path="/cgi-bin/kf/service_state/get", delay_s=1.0, times=2)
    with pytest.raises(TransportError, match="timeout"):
        await s.kf_client.call(
            "/cgi-bin/kf/service_state/get",
            {"open_kfid": env.state.open_kfid, "external_userid": "wm1"},
        )


async def test_outage_leaves_the_send_in_the_outbox_until_the_retry_loop_delivers_it(env):
    s = env.services(retries=2)
    await fault(env, path="/cgi-bin/message/send", status=502, times=2)
    result = await s.app.send_text("lisi", "顾问请注意：客人投诉", dedupe_key="page:1:ack")
    assert result.status == "retry"
    row = s.outbox.list_sync()[0]
    assert row.status == "retry" and row.dedupe_key == "page:1:ack"
    with s.db.session() as session:  # make it due now
        from sqlalchemy import update

        from bot.wecom.models import OutboxMessage

        session.execute(update(OutboxMessage).values(next_attempt_at=None))
        session.execute(update(OutboxMessage).values(next_attempt_at=OutboxMessage.created_at))
    assert await s.retry_due() == 1
    assert s.outbox.list_sync()[0].status == "sent"
    sends = [c for c in await env.calls() if c["path"] == "/cgi-bin/message/send"]
    assert [c.get("status") or c.get("errcode") for c in sends] == [502, 502, 0]


async def test_permanent_error_is_dead_lettered(env):
    s = env.services()
    await fault(env, path="/cgi-bin/message/send", errcode=40003, times=1)
    result = await s.app.send_text("nobody", "x")
    assert result.status == "dead" and result.errcode == 40003
    row = s.outbox.list_sync()[0]
    assert (row.status, row.errcode) == ("dead", 40003)


async def test_same_dedupe_key_is_not_sent_twice(env):
    s = env.services()
    assert (await s.app.send_text("lisi", "一次", dedupe_key="k")).ok
    assert (await s.app.send_text("lisi", "一次", dedupe_key="k")).status == "duplicate"
    assert len([c for c in await env.calls() if c["path"] == "/cgi-bin/message/send"]) == 1


async def test_per_member_limit_holds_back_instead_of_losing(env):
    s = env.services()
    statuses = [(await s.app.send_text("busy_advisor", f"第{i}条")).status for i in range(32)]
    assert statuses[:30] == ["sent"] * 30
    assert statuses[30:] == ["deferred", "deferred"]  # WeCom would drop them: we keep them
    rows = s.outbox.list_sync(status="retry")
    assert len(rows) == 2 and all(r.attempts == 0 for r in rows)
    assert len([c for c in await env.calls() if c["path"] == "/cgi-bin/message/send"]) == 30


async def test_textcard_and_limits(env):
    s = env.services()
    result = await s.app.send_textcard(
        "lisi",
        "【投诉】" + "房间卫生" * 40,
        "客人：王先生\n" + "描述" * 300,
        "https://console.example/tickets/1",
        "查看详情",
    )
    assert result.ok
    body = [c for c in await env.calls() if c["path"] == "/cgi-bin/message/send"][-1]["body"]
    card = body["textcard"]
    assert len(card["title"].encode()) <= 128 and len(card["description"].encode()) <= 512
    assert card["btntxt"] == "查看详情"


async def test_wrong_apps_token_is_refused_by_the_sandbox_as_by_wecom(env):
    s = env.services()
    with pytest.raises(WeComAPIError) as info:
        await s.app_client.call("/cgi-bin/kf/sync_msg", {"open_kfid": env.state.open_kfid})
    assert info.value.errcode == 48002


async def test_a_kf_send_delivered_just_before_a_crash_is_not_sent_twice(env):
    s = env.services()
    async with env.http.post(
        f"{env.sandbox}/_sandbox/guest/kf", json={"external_userid": "wm_crash", "text": "在吗"}
    ):
        pass
    await s.kf.sync(env.state.open_kfid)  # the guest wrote: the 48-hour window is open
    result = await s.kf.send(
        env.state.open_kfid,
        "wm_crash",
        {"msgtype": "text", "text": {"content": "您好，在的"}},
        dedupe_key="reply:77:0",
    )
    assert result.status == "sent"
    # The process died after WeCom took the message but before it recorded that: still 'sending'.
    s.outbox.stale_sending_s = 0
    s.outbox.mark_sync(result.outbox_id, "sending", attempted=False)
    assert await s.retry_due() == 1
    [row] = s.outbox.list_sync(recipient=None)
    assert row.status == "sent" and row.errcode == 40058
    delivered = [
        c
        for c in await env.calls()
        if c["path"] == "/cgi-bin/kf/send_msg" and c.get("errcode") in (None, 0)
    ]
    assert len(delivered) == 1


async def test_a_kf_send_that_never_reached_wecom_before_a_crash_is_sent_by_the_retry(env):
    s = env.services()
    async with env.http.post(
        f"{env.sandbox}/_sandbox/guest/kf", json={"external_userid": "wm_crash2", "text": "在吗"}
    ):
        pass
    from bot.wecom.dedupe import short_id

    body = {
        "touser": "wm_crash2",
        "open_kfid": env.state.open_kfid,
        "msgtype": "text",
        "text": {"content": "您好"},
        "msgid": short_id("reply:78:0", 32),
    }
    s.outbox.stale_sending_s = 0
    s.outbox.begin_sync(
        "kf", "/cgi-bin/kf/send_msg", body, "kf:wm_crash2", "reply:78:0"
    )  # then the crash
    assert await s.retry_due() == 1
    assert [r.status for r in s.outbox.list_sync()] == ["sent"]
    assert [
        c["body"]["msgid"] for c in await env.calls() if c["path"] == "/cgi-bin/kf/send_msg"
    ] == [body["msgid"]]


class _DownLimiter:
    """The Redis behind the rate limit is restarting."""

    async def hit(self, key: str) -> float:
        import redis.exceptions

        raise redis.exceptions.ConnectionError("Connection refused")


async def test_a_rate_limit_store_outage_leaves_the_send_to_the_outbox_not_in_flight(env):
    s = env.services()
    working = s.app_limiter
    s.app_limiter = _DownLimiter()
    result = await s.app.send_textcard(
        "lisi",
        "【新投诉】#9 林晓·金卡",
        "房间有烟味",
        "http://x/cases/9?sig=s",
        dedupe_key="sla:9:x",
    )
    # handed to the outbox (a caller retrying on an exception would page a second advisor,
    # while the row left 'sending' would still go out to the first 120 s later)
    assert result.status == "retry"
    [row] = s.outbox.list_sync()
    assert (row.status, row.attempts) == ("retry", 0)
    assert "ConnectionError" in (row.errmsg or "")
    assert await env.calls("/cgi-bin/message/send") == []
    assert await s.retry_due() == 0  # not before its time
    s.app_limiter = working  # Redis is back
    with s.db.session() as session:
        from sqlalchemy import update

        from bot.wecom.models import OutboxMessage

        session.execute(update(OutboxMessage).values(next_attempt_at=OutboxMessage.created_at))
    assert await s.retry_due() == 1
    assert [r.status for r in s.outbox.list_sync()] == ["sent"]
    assert [c["errcode"] for c in await env.calls("/cgi-bin/message/send")] == [0]


async def test_a_store_outage_during_a_sweep_does_not_stop_the_other_rows(env):
    s = env.services()
    for n in (1, 2):
        await fault(env, path="/cgi-bin/message/send", status=502, times=3)
        assert (await s.app.send_text("lisi", f"第{n}条", dedupe_key=f"k{n}")).status == "retry"
    with s.db.session() as session:
        from sqlalchemy import update

        from bot.wecom.models import OutboxMessage

        session.execute(update(OutboxMessage).values(next_attempt_at=OutboxMessage.created_at))
    s.app_limiter = _DownLimiter()
    assert await s.retry_due() == 2  # both tried, neither left 'sending'
    assert [r.status for r in s.outbox.list_sync()] == ["retry", "retry"]


class _DownTokenStore:
    """The Redis holding the shared access token is restarting."""

    async def get(self, key):
        import redis.exceptions

        raise redis.exceptions.ConnectionError("Connection refused")


async def test_a_token_store_outage_leaves_the_send_to_the_outbox(env):
    s = env.services(token_store=_DownTokenStore())
    result = await s.app.send_text("lisi", "新投诉 #10", dedupe_key="sla:10:x")
    assert result.status == "retry"
    [row] = s.outbox.list_sync()
    assert row.status == "retry" and "ConnectionError" in (row.errmsg or "")
    assert await env.calls("/cgi-bin/message/send") == []

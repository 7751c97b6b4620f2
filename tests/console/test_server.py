"""The console's server side: anonymous requests, every role check, the property rule, CSRF on
every form, sessions and login links, the advisors' actions and what they are audited as."""

from __future__ import annotations

import csv
import re
import io

import pytest
from yarl import URL

from bot.console.auth import SESSION_COOKIE, Auth
from tests.console.conftest import SECRET, sign_in

SHANGHAI = "shanghai-bund-hotel"

PAGES = ["/advisor", "/reports", "/marketing", "/admin", "/reports/classes.csv"]
# Who may open what (bot/console/staff.py AREAS): 200 allowed, 403 refused.
MATRIX = {
    "advisor_li": {
        "/advisor": 200,
        "/reports": 403,
        "/marketing": 403,
        "/admin": 403,
        "/reports/classes.csv": 403,
    },
    "supervisor_wang": {
        "/advisor": 200,
        "/reports": 200,
        "/marketing": 403,
        "/admin": 403,
        "/reports/classes.csv": 200,
    },
    "marketer_sun": {
        "/advisor": 403,
        "/reports": 403,
        "/marketing": 200,
        "/admin": 403,
        "/reports/classes.csv": 403,
    },
    "admin_qian": {
        "/advisor": 403,
        "/reports": 200,
        "/marketing": 200,
        "/admin": 200,
        "/reports/classes.csv": 200,
    },
}


# ---- anonymous --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES + ["/", "/advisor/cases/1", "/advisor/queue"])
async def test_anonymous_page_requests_are_sent_to_sign_in(client, path):
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"].startswith("/login")


async def test_anonymous_redirect_keeps_where_they_were_going(client):
    resp = await client.get("/advisor?scope=mine", allow_redirects=False)
    target = URL(resp.headers["Location"])
    assert target.path == "/login" and target.query["next"] == "/advisor?scope=mine"


async def test_anonymous_htmx_poll_and_post_get_401_with_a_redirect_for_htmx(client):
    resp = await client.get("/advisor/queue", headers={"HX-Request": "true"}, allow_redirects=False)
    assert resp.status == 401 and resp.headers["HX-Redirect"].startswith("/login")
    resp = await client.post("/advisor/cases/1/act", data={"verb": "ack"}, allow_redirects=False)
    assert resp.status == 401


async def test_health_and_sign_in_page_need_no_session(client):
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/login")
    assert resp.status == 200 and "企业微信登录" in await resp.text()


# ---- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("userid", sorted(MATRIX))
@pytest.mark.parametrize("path", PAGES)
async def test_role_checks(client, console, userid, path):
    await sign_in(client, console, userid)
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == MATRIX[userid][path], (userid, path)
    if resp.status == 403:
        assert "无权访问" in await resp.text()


@pytest.mark.parametrize(
    "userid,home",
    [
        ("advisor_li", "/advisor"),
        ("marketer_sun", "/marketing"),
        ("admin_qian", "/marketing"),
        ("supervisor_wang", "/advisor"),
    ],
)
async def test_signing_in_lands_on_the_first_area_the_role_may_open(client, console, userid, home):
    token = console.deps.auth.login_token(userid)
    resp = await client.post("/login/link", data={"token": token}, allow_redirects=False)
    assert resp.headers["Location"] == home


async def test_marketer_is_refused_the_advisor_actions_too(client, console):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    csrf = await sign_in(client, console, "marketer_sun")
    for path in (f"/advisor/cases/{case}", f"/advisor/cases/{case}/conversation"):
        assert (await client.get(path)).status == 403
    resp = await client.post(f"/advisor/cases/{case}/act", data={"csrf": csrf, "verb": "ack"})
    assert resp.status == 403
    assert console.store.clock(case).state == "running"


async def test_someone_taken_off_the_staff_list_loses_access_at_once(client, console):
    await sign_in(client, console, "marketer_sun")
    console.deps.staff.extra.pop("marketer_sun")
    resp = await client.get("/marketing", allow_redirects=False)
    assert resp.status == 403 and "不在员工名单" in await resp.text()


# ---- the property rule ------------------------------------------------------------------------


async def test_advisors_see_and_open_only_their_properties_cases(client, console):
    mine = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    theirs = await console.page(
        console.complaint("kf:wm_b", "陈先生", "隔壁太吵", property_id=SHANGHAI)
    )
    assert console.store.clock(theirs).property_id == SHANGHAI

    await sign_in(client, console, "advisor_li")
    queue = await (await client.get("/advisor")).text()
    assert f"#{mine} " in queue and f"#{theirs} " not in queue and "陈先生" not in queue
    resp = await client.get(f"/advisor/cases/{theirs}")
    assert resp.status == 403 and "不负责的门店" in await resp.text()
    assert (await client.get(f"/advisor/cases/{theirs}/conversation")).status == 403
    denied = console.crm.audit_entries(action="console.denied")
    assert denied and denied[0].actor == "console:advisor_li"

    csrf = await sign_in(client, console, "advisor_xu")
    queue = await (await client.get("/advisor")).text()
    assert f"#{theirs} " in queue and f"#{mine} " not in queue
    resp = await client.post(f"/advisor/cases/{mine}/act", data={"csrf": csrf, "verb": "ack"})
    assert resp.status == 403
    assert console.store.clock(mine).state == "running"


async def test_supervisor_reports_count_only_their_properties(client, console):
    await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    await console.page(console.complaint("kf:wm_b", "陈先生", "隔壁太吵", property_id=SHANGHAI))
    await sign_in(client, console, "supervisor_he")
    rows = list(
        csv.DictReader(
            io.StringIO((await (await client.get("/reports/classes.csv")).text()).lstrip("\ufeff"))
        )
    )
    assert [(r["class"], r["cases"]) for r in rows] == [("普通投诉", "1")]
    await sign_in(client, console, "admin_qian")
    rows = list(
        csv.DictReader(
            io.StringIO((await (await client.get("/reports/classes.csv")).text()).lstrip("\ufeff"))
        )
    )
    assert [(r["class"], r["cases"]) for r in rows] == [("普通投诉", "2")]


# ---- CSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        {"verb": "ack"},  # no token
        {"verb": "ack", "csrf": "forged"},  # a made-up one
        {"verb": "ack", "csrf": ""},  # empty
    ],
)
async def test_case_actions_without_the_sessions_csrf_token_are_refused(client, console, form):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    await sign_in(client, console, "advisor_li")
    resp = await client.post(f"/advisor/cases/{case}/act", data=form)
    assert resp.status == 403 and "安全校验" in await resp.text()
    assert console.store.clock(case).state == "running"


async def test_another_sessions_csrf_token_does_not_work(client, console):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    other = await sign_in(client, console, "advisor_zhou")
    await sign_in(client, console, "advisor_li")
    resp = await client.post(f"/advisor/cases/{case}/act", data={"verb": "ack", "csrf": other})
    assert resp.status == 403


@pytest.mark.parametrize(
    "path,form",
    [
        ("/advisor/cases/{case}/act", {"verb": "note", "text": "x"}),
        ("/advisor/cases/{case}/reassign", {"to": "advisor_zhou"}),
        ("/logout", {}),
    ],
)
async def test_every_form_checks_csrf(client, console, path, form):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    csrf = await sign_in(client, console, "advisor_li")
    url = path.format(case=case)
    assert (await client.post(url, data=form, allow_redirects=False)).status == 403
    ok = await client.post(url, data={**form, "csrf": csrf}, allow_redirects=False)
    assert ok.status == 303
    # The htmx header carries the same token.
    if path != "/logout":
        ok = await client.post(
            url, data=form, headers={"X-CSRF-Token": csrf}, allow_redirects=False
        )
        assert ok.status == 303


# ---- sessions and links -----------------------------------------------------------------------


async def test_a_session_expires(client, console):
    await sign_in(client, console, "advisor_li")
    assert (await client.get("/advisor", allow_redirects=False)).status == 200
    console.epoch.now += console.deps.auth.session_ttl_s + 1
    resp = await client.get("/advisor", allow_redirects=False)
    assert resp.status == 302
    target = URL(resp.headers["Location"])
    assert target.query["next"] == "/advisor" and target.query["expired"] == "1"
    page = await (await client.get(resp.headers["Location"])).text()
    assert "登录已过期" in page


async def test_a_forged_session_cookie_is_refused(client, console):
    await sign_in(client, console, "marketer_sun")
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    forged = cookie.replace("marketer_sun", "admin_qian", 1)
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: forged})
    resp = await client.get("/admin", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")


async def test_a_login_link_works_once(client, console):
    token = console.deps.auth.login_token("advisor_li")
    first = await client.post("/login/link", data={"token": token}, allow_redirects=False)
    assert first.status == 303
    again = await client.post("/login/link", data={"token": token}, allow_redirects=False)
    assert again.status == 403 and "已使用过" in await again.text()
    entries = console.crm.audit_entries(action="console.sign_in")
    assert [(e.actor, e.subject_type) for e in entries] == [("console:advisor_li", "login_link")]


async def test_a_used_link_stays_used_after_a_console_restart(client, console):
    token = console.deps.auth.login_token("advisor_li")
    assert (
        await client.post("/login/link", data={"token": token}, allow_redirects=False)
    ).status == 303
    # A new process: same secret, nothing in memory; the audit log remembers the use.
    console.deps.auth = Auth(SECRET, clock=console.epoch)
    again = await client.post("/login/link", data={"token": token}, allow_redirects=False)
    assert again.status == 403


async def test_an_expired_or_forged_link_is_refused(client, console):
    token = console.deps.auth.login_token("advisor_li")
    forged = token.replace("advisor_li", "admin_qian", 1)
    resp = await client.post("/login/link", data={"token": forged}, allow_redirects=False)
    assert resp.status == 403 and "无效" in await resp.text()
    console.epoch.now += console.deps.auth.link_ttl_s
    resp = await client.post("/login/link", data={"token": token}, allow_redirects=False)
    text = await resp.text()
    assert resp.status == 403 and "过期" in text, text[-600:]
    for junk in ("", "a|b", "x" * 5000):
        assert (await client.post("/login/link", data={"token": junk})).status == 403


async def test_opening_a_link_does_not_use_it(client, console):
    token = console.deps.auth.login_token("advisor_li")
    page = await client.get("/login/link", params={"token": token})
    assert page.status == 200 and "登录员工后台" in await page.text()
    assert (
        await client.post("/login/link", data={"token": token}, allow_redirects=False)
    ).status == 303


async def test_a_link_for_someone_not_on_staff_is_refused(client, console):
    token = console.deps.auth.login_token("guest_someone")
    resp = await client.post("/login/link", data={"token": token}, allow_redirects=False)
    assert resp.status == 403
    assert SESSION_COOKIE not in resp.cookies or not resp.cookies[SESSION_COOKIE].value


async def test_signing_out_ends_the_session(client, console):
    csrf = await sign_in(client, console, "advisor_li")
    await client.post("/logout", data={"csrf": csrf})
    resp = await client.get("/advisor", allow_redirects=False)
    assert resp.status == 302


# ---- the advisor's work -----------------------------------------------------------------------


async def _act(client, case, csrf, verb, text=""):
    resp = await client.post(
        f"/advisor/cases/{case}/act", data={"csrf": csrf, "verb": verb, "text": text}
    )
    assert resp.status == 200
    return await resp.text()


async def test_takeover_reply_note_handback_resolve(client, console):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间里有很重的烟味"))
    csrf = await sign_in(client, console, "advisor_li")

    page = await _act(client, case, csrf, "takeover")
    assert "已接管" in page and "kf:wm_a" in console.rasa.paused
    assert console.store.clock(case).takeover_userid == "advisor_li"
    assert any("李顾问" in m["text"] for m in console.messenger.to("guest", "kf:wm_a"))

    page = await _act(client, case, csrf, "reply", "您好，已为您安排无烟房")
    assert "已发送给客人" in page
    assert console.messenger.to("guest", "kf:wm_a")[-1]["text"] == "李顾问：您好，已为您安排无烟房"

    await _act(client, case, csrf, "note", "客人对烟味敏感")
    assert (
        "客人对烟味敏感" in page
        or "客人对烟味敏感" in await (await client.get(f"/advisor/cases/{case}")).text()
    )

    await _act(client, case, csrf, "handback")
    assert "kf:wm_a" not in console.rasa.paused

    page = await _act(client, case, csrf, "resolve", "已换房并赠送下午茶")
    assert "已结案" in page
    assert console.store.clock(case).state == "resolved"
    assert "已换房并赠送下午茶" in console.messenger.to("guest", "kf:wm_a")[-1]["text"]

    actions = {(e.actor, e.action) for e in console.crm.audit_entries(limit=50)}
    for action in ("sla.take_over", "sla.reply", "sla.note", "sla.hand_back", "sla.resolve"):
        assert ("console:advisor_li", action) in actions


async def test_empty_or_oversized_text_is_refused_with_a_message(client, console):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    csrf = await sign_in(client, console, "advisor_li")
    assert "需要填写内容" in await _act(client, case, csrf, "reply", "   ")
    assert "内容太长" in await _act(client, case, csrf, "reply", "长" * 1001)
    assert "不支持的操作" in await _act(client, case, csrf, "delete")
    assert console.messenger.to("guest", "kf:wm_a") == []


async def test_reassign_to_a_rostered_advisor_only(client, console):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    csrf = await sign_in(client, console, "advisor_li")
    holder = console.store.clock(case).holder
    other = "advisor_zhou" if holder == "advisor_li" else "advisor_li"
    resp = await client.post(f"/advisor/cases/{case}/reassign", data={"csrf": csrf, "to": other})
    assert "已把" in await resp.text()
    assert console.store.clock(case).paged_userid == other
    assert any("转给了您" in m["text"] for m in console.messenger.to("app", other))
    resp = await client.post(
        f"/advisor/cases/{case}/reassign", data={"csrf": csrf, "to": "advisor_xu"}
    )
    assert "只能转派给" in await resp.text()
    assert console.store.clock(case).paged_userid == other


async def test_a_reply_that_cannot_be_sent_says_so(client, console):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    csrf = await sign_in(client, console, "advisor_li")
    console.messenger.fail_next = 1
    page = await _act(client, case, csrf, "reply", "您好")
    assert "回复未发出" in page


# ---- audit ------------------------------------------------------------------------------------


async def test_every_page_showing_a_guest_is_audited_with_the_viewer(client, console):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    await sign_in(client, console, "advisor_li")  # lands on /advisor: one queue view
    await client.get("/advisor")
    await client.get("/advisor/queue", headers={"HX-Request": "true"})
    await client.get(f"/advisor/cases/{case}")
    await client.get(f"/advisor/cases/{case}/conversation")
    entries = console.crm.audit_entries(limit=50)
    seen = [(e.actor, e.action) for e in entries]
    assert seen.count(("console:advisor_li", "console.queue")) == 3
    assert ("console:advisor_li", "profile.view") in seen
    assert ("console:advisor_li", "console.conversation") in seen
    queue = next(e for e in entries if e.action == "console.queue")
    assert queue.detail["senders"] == ["kf:wm_a"]


async def test_an_empty_queue_reads_no_guest_and_audits_nothing(client, console):
    await sign_in(client, console, "advisor_li")
    page = await (await client.get("/advisor")).text()
    assert "没有待处理的单" in page
    assert console.crm.audit_entries(action="console.queue") == []


async def test_the_case_page_survives_rasa_being_down(client, console):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    await sign_in(client, console, "advisor_li")
    console.rasa.down = True
    resp = await client.get(f"/advisor/cases/{case}/conversation")
    assert resp.status == 200 and "暂时读不到对话记录" in await resp.text()


async def test_unknown_case_is_404(client, console):
    await sign_in(client, console, "advisor_li")
    assert (await client.get("/advisor/cases/999")).status == 404
    assert (await client.get("/advisor/cases/abc")).status == 404


async def test_queue_filters(client, console):
    a = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    await sign_in(client, console, "supervisor_wang")
    page = await (await client.get("/advisor", params={"scope": "mine"})).text()
    assert f"#{a} " not in page  # paged to an advisor, not the supervisor
    page = await (await client.get("/advisor", params={"scope": "unassigned"})).text()
    assert f"#{a} " in page
    page = await (await client.get("/advisor", params={"kind": "addon_order"})).text()
    assert f"#{a} " not in page


# ---- reports ----------------------------------------------------------------------------------


async def test_reports_csv_and_svg(client, console):
    case = await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))
    csrf = await sign_in(client, console, "advisor_li")
    await _act(client, case, csrf, "ack")
    await _act(client, case, csrf, "resolve", "已处理")
    console.crm.record_feedback("kf:wm_a", kind="nps", score=9)
    await sign_in(client, console, "admin_qian")
    page = await (await client.get("/reports")).text()
    assert page.count("<svg") == 6
    resp = await client.get("/reports/advisors.csv")
    assert resp.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO((await resp.text()).lstrip("\ufeff"))))
    assert any(r["userid"] == "advisor_li" and r["handled"] == "1" for r in rows)
    nps = list(
        csv.DictReader(
            io.StringIO((await (await client.get("/reports/nps.csv")).text()).lstrip("\ufeff"))
        )
    )
    assert [(r["count"], r["nps"]) for r in nps] == [("1", "100")]
    assert (await client.get("/reports/secrets.csv")).status == 404


# ---- production -------------------------------------------------------------------------------


def test_preflight_refuses_the_console_on_development_values(monkeypatch):
    from bot.console.auth import DEV_SECRET
    from bot.preflight import run_checks
    from bot.settings import get_settings

    monkeypatch.setenv("CONSOLE_SECRET", DEV_SECRET)
    monkeypatch.setenv("CONSOLE_BASE_URL", "http://localhost:8000")
    monkeypatch.setenv("WECOM_OAUTH_BASE", "http://127.0.0.1:8800")
    get_settings.cache_clear()
    problems = [str(p) for p in run_checks()]
    assert any(p.startswith("CONSOLE_SECRET") for p in problems)
    assert any("CONSOLE_BASE_URL" in p for p in problems)
    assert any("WECOM_OAUTH_BASE" in p for p in problems)


# ---- marketing and admin forms ----------------------------------------------------------------

AREA_FORMS = [
    (
        "/marketing/campaigns",
        {"name": "x", "segment": "gold_and_above", "template": "hi"},
        "marketer_sun",
    ),
    (
        "/marketing/touchpoints",
        {"property": "default", "kind": "birthday", "enabled": "0"},
        "marketer_sun",
    ),
    ("/admin/inbox/label", {"item": "1", "intent": "greet"}, "admin_qian"),
    ("/admin/models/train", {"note": "x"}, "admin_qian"),
    ("/admin/models/deploy", {"version": "v"}, "admin_qian"),
    ("/admin/models/rollback", {}, "admin_qian"),
]


@pytest.mark.parametrize("path,form,owner", AREA_FORMS)
async def test_area_forms_check_csrf_and_role(client, console, path, form, owner):
    outsider = "advisor_li"
    csrf = await sign_in(client, console, outsider)
    resp = await client.post(path, data={**form, "csrf": csrf}, allow_redirects=False)
    assert resp.status == 403 and "角色" in await resp.text()
    csrf = await sign_in(client, console, owner)
    resp = await client.post(path, data=form, allow_redirects=False)
    assert resp.status == 403 and "安全校验" in await resp.text()
    resp = await client.post(path, data={**form, "csrf": csrf}, allow_redirects=False)
    assert resp.status == 303  # (no service configured here: the page says so)


async def test_marketing_campaign_is_created_through_the_service_and_audited(
    client, console, tmp_path
):
    from tests.console.conftest import FakeReplica, attach_areas

    attach_areas(console, tmp_path, "http://127.0.0.1:9", FakeReplica())
    csrf = await sign_in(client, console, "marketer_sun")
    resp = await client.post(
        "/marketing/campaigns",
        data={
            "csrf": csrf,
            "name": "会员日",
            "segment": "gold_and_above",
            "template": "{{ name }}您好，会员日快乐",
            "schedule": "",
        },
    )
    page = await resp.text()
    assert resp.status == 200 and "已保存活动" in page and "会员日快乐" in page
    campaign = console.deps.extras["marketing"].campaigns.list()[0]
    assert campaign["created_by"] == "console:marketer_sun"
    bad = await client.post(
        "/marketing/campaigns",
        data={"csrf": csrf, "name": "x", "segment": "../../etc/passwd", "template": "hi"},
    )
    assert "请选择一个分群" in await bad.text()
    resp = await client.post(
        "/marketing/touchpoints",
        data={"csrf": csrf, "property": "default", "kind": "birthday", "enabled": "0"},
    )
    assert "已关闭" in await resp.text()
    steps = console.deps.extras["marketing"].touchpoints.sequence("default")
    assert next(s for s in steps if s["kind"] == "birthday")["enabled"] is False


async def test_admin_deploy_refused_by_the_gate_says_why(client, console, tmp_path):
    from tests.console.conftest import FakeReplica, attach_areas

    versions, _ = attach_areas(console, tmp_path, "http://127.0.0.1:9", FakeReplica())
    loop = console.deps.extras["training"]
    worse = {
        "simplified": {
            "n": 100,
            "accuracy": 0.5,
            "macro_f1": 0.5,
            "complain_recall": 0.5,
            "oos_recall": 0.5,
            "false_fallback_rate": 0.3,
            "entity_f1": 0.5,
            "per_intent_recall": {},
        }
    }
    loop.registry.update(versions[1], figures=worse)
    csrf = await sign_in(client, console, "admin_qian")
    resp = await client.post("/admin/models/deploy", data={"csrf": csrf, "version": versions[1]})
    page = await resp.text()
    assert "未完成" in page and "worse than the deployed model" in page
    assert loop.registry.deployed_version() == versions[0]


async def test_reports_list_the_messages_the_bot_did_not_understand(client, console, tmp_path):
    from tests.console.conftest import FakeReplica, add_inbox_item, attach_areas

    attach_areas(console, tmp_path, "http://127.0.0.1:9", FakeReplica())
    add_inbox_item(console.crm.engine, "泳池边能点外卖进来吃吗")
    await sign_in(client, console, "supervisor_wang")
    assert "泳池边能点外卖进来吃吗" in await (await client.get("/reports")).text()
    rows = list(
        csv.DictReader(
            io.StringIO(
                (await (await client.get("/reports/fallbacks.csv")).text()).lstrip("\ufeff")
            )
        )
    )
    assert [(r["text"], r["count"], r["reasons"]) for r in rows] == [
        ("泳池边能点外卖进来吃吗", "1", "fallback")
    ]


# ---- data files (/admin/files) ----------------------------------------------------------------


@pytest.fixture
def data_copies(console, tmp_path, monkeypatch):
    """The knowledge base, catalogue and SLA policy as copies the test may overwrite."""
    import dataclasses
    import shutil

    from bot.settings import PROJECT_ROOT

    shutil.copytree(PROJECT_ROOT / "data" / "knowledge", tmp_path / "knowledge")
    shutil.copytree(PROJECT_ROOT / "data" / "catalogue", tmp_path / "catalogue")
    shutil.copyfile(
        PROJECT_ROOT / "tests" / "fixtures" / "console_policy.yml", tmp_path / "policy.yml"
    )
    monkeypatch.setattr("bot.orders.catalogue.CATALOGUE_DIR", tmp_path / "catalogue")
    console.deps.settings = dataclasses.replace(
        console.deps.settings,
        knowledge_dir=tmp_path / "knowledge",
        sla_policy_file=tmp_path / "policy.yml",
    )
    return tmp_path


async def test_data_files_are_validated_before_saving(client, console, data_copies):
    policy = data_copies / "policy.yml"
    original = policy.read_text(encoding="utf-8")
    assert (await client.get("/admin/files", allow_redirects=False)).status == 302
    await sign_in(client, console, "advisor_li")
    assert (await client.get("/admin/files")).status == 403
    csrf = await sign_in(client, console, "admin_qian")
    listing = await (await client.get("/admin/files")).text()
    assert "policy.yml" in listing and "items.yml" in listing and "amenities.yml" in listing

    broken = original.replace("notify: [supervisor, guest]", "notify: [supervsor, guest]", 1)
    resp = await client.post(
        "/admin/files/sla/policy.yml", data={"csrf": csrf, "text": broken, "action": "save"}
    )
    page = await resp.text()
    assert "校验未通过" in page and "supervsor" in page
    assert policy.read_text(encoding="utf-8") == original

    renamed = original.replace("label: 普通投诉", "label: 普通投诉（已修改）", 1)
    resp = await client.post(
        "/admin/files/sla/policy.yml", data={"csrf": csrf, "text": renamed, "action": "check"}
    )
    assert "校验通过" in await resp.text()
    assert policy.read_text(encoding="utf-8") == original  # checked, not saved
    resp = await client.post(
        "/admin/files/sla/policy.yml", data={"csrf": csrf, "text": renamed, "action": "save"}
    )
    assert "已校验并保存" in await resp.text()
    assert policy.read_text(encoding="utf-8") == renamed
    entry = console.crm.audit_entries(action="datafile.save")[0]
    assert entry.actor == "console:admin_qian" and entry.subject_id == "policy.yml"

    kb = data_copies / "knowledge" / "sanya-haitang-resort.yml"
    before = kb.read_text(encoding="utf-8")
    resp = await client.post(
        "/admin/files/knowledge/sanya-haitang-resort.yml",
        data={"csrf": csrf, "text": "id: [unclosed", "action": "save"},
    )
    assert "校验未通过" in await resp.text()
    assert kb.read_text(encoding="utf-8") == before
    items = data_copies / "catalogue" / "items.yml"
    before = items.read_text(encoding="utf-8")
    resp = await client.post(
        "/admin/files/catalogue/items.yml",
        data={"csrf": csrf, "text": "items:\n  spa: {}\n", "action": "save"},
    )
    assert "校验未通过" in await resp.text() and "needs a name" in await resp.text()
    assert items.read_text(encoding="utf-8") == before


async def test_data_files_refuse_other_paths_and_missing_csrf(client, console, data_copies):
    csrf = await sign_in(client, console, "admin_qian")
    for path in (
        "/admin/files/sla/..%2F..%2Fetc%2Fpasswd",
        "/admin/files/sla/other.yml",
        "/admin/files/secrets/policy.yml",
    ):
        assert (await client.get(path)).status == 404
        assert (await client.post(path, data={"csrf": csrf, "text": "x"})).status == 404
    resp = await client.post("/admin/files/sla/policy.yml", data={"text": "x", "action": "save"})
    assert resp.status == 403


async def test_reports_automation_rate_intents_and_handoffs_from_the_event_stream(client, console):
    from bot.events.store import EventStore

    events = EventStore(console.crm.engine)
    now = console.clock().timestamp()

    def said(sender, intent, at):  # a user event as Rasa's event broker publishes it
        events.record(
            {
                "sender_id": sender,
                "event": "user",
                "timestamp": at,
                "text": "…",
                "parse_data": {"intent": {"name": intent, "confidence": 0.9}},
            }
        )

    for sender, intent, at in [
        ("kf:wm_a", "complain", now),
        ("kf:wm_b", "ask_weather", now),
        ("kf:wm_b", "ask_weather", now + 1),
        ("kf:wm_c", "greet", now),
        ("kf:wm_d", "nlu_fallback", now),
        ("kf:wm_old", "greet", now - 90 * 86400),
    ]:  # before the period
        said(sender, intent, at)
    # wm_d: the bot gave up and handed over (no case was opened for it)
    events.record(
        {
            "sender_id": "kf:wm_d",
            "event": "slot",
            "timestamp": now + 2,
            "name": "fallback_route",
            "value": "handed_off",
        }
    )
    events.record(
        {
            "sender_id": "kf:wm_c",
            "event": "slot",
            "timestamp": now + 2,
            "name": "fallback_route",
            "value": "rephrase",
        }
    )  # not a handoff
    console.deps.extras["events"] = events
    await console.page(console.complaint("kf:wm_a", "林晓", "房间有烟味"))  # a person was needed
    await sign_in(client, console, "admin_qian")
    page = await (await client.get("/reports")).text()
    assert "50.0%" in page and "4 位客人中 2 位" in page
    assert "转人工 1 位" in page and "未听懂的消息 1 条" in page
    rows = list(
        csv.DictReader(
            io.StringIO((await (await client.get("/reports/intents.csv")).text()).lstrip("\ufeff"))
        )
    )
    assert [(r["intent"], r["messages"]) for r in rows] == [
        ("ask_weather", "2"),
        ("complain", "1"),
        ("greet", "1"),
        ("nlu_fallback", "1"),
    ]

    class Down:
        def usage_since(self, since):
            raise ConnectionError("database away")

    # The events unreadable: the report still answers, without those figures.
    console.deps.extras["events"] = Down()
    resp = await client.get("/reports")
    assert resp.status == 200 and "暂无对话数据" in await resp.text()


async def test_page_titles_are_plain_text(client, console):
    await sign_in(client, console, "admin_qian")
    for path in ("/reports", "/marketing", "/admin"):
        html = await (await client.get(path)).text()
        title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
        assert "<" not in title and len(title) < 40, (path, title)

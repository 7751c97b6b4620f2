"""The paging tables match their models on both backends; the SLA report's figures."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bot.crm.db import downgrade, make_engine, upgrade
from bot.crm.models import Base
from bot.paging.models import PAGING_TABLES
from bot.paging.report import build_report, format_report
from tests.paging.conftest import complaint, new_guest


def _paging_only(obj, name, type_, reflected, compare_to):
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or table.name in PAGING_TABLES


def test_models_and_migration_agree_and_downgrade_removes_the_tables(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": _paging_only}
            )
            assert compare_metadata(context, Base.metadata) == []
        downgrade(engine, "0002_wecom_channel")
        assert not set(PAGING_TABLES) & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert set(PAGING_TABLES) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


async def test_report_per_class_and_breaches_by_advisor(crm, paging, make_worker, clock, policy):
    sender = new_guest(crm)
    tickets = [complaint(crm, sender) for _ in range(3)]
    order = crm.create_order(sender, item="接机", sla_class="addon_order")
    t0 = max(t.created_at for t in tickets + [order])
    worker = make_worker()
    clock.set(t0)
    await worker.tick()
    cases = [paging.clock_for("ticket", t.id) for t in tickets]
    paging.acknowledge(cases[0].id, "advisor_li", t0 + dt.timedelta(seconds=3))  # met
    paging.resolve(cases[0].id, "advisor_li", "ok", t0 + dt.timedelta(seconds=30))  # met
    paging.acknowledge(cases[1].id, "advisor_zhou", t0 + dt.timedelta(seconds=20))  # missed
    paging.resolve(cases[1].id, "advisor_zhou", "ok", t0 + dt.timedelta(seconds=90))  # missed
    paging.record_rating(cases[1].id, 2, t0 + dt.timedelta(seconds=95))
    # case 2 never acknowledged; the order acknowledged in time, still open
    paging.acknowledge(
        paging.clock_for("order", order.id).id, "advisor_li", t0 + dt.timedelta(seconds=1)
    )
    clock.set(t0 + dt.timedelta(seconds=100))
    await worker.tick()
    report = build_report(policy, paging.clocks(), paging.steps(), clock())
    routine = next(f for f in report.classes if f.sla_class == "complaint_routine")
    assert (routine.cases, routine.open) == (3, 1)
    assert (routine.ack_met, routine.ack_missed, routine.ack_pending) == (1, 2, 0)
    assert (routine.resolve_met, routine.resolve_missed) == (1, 2)
    assert routine.ack.count == 2 and routine.ack.median_s == pytest.approx(11.5, abs=1)
    assert routine.rating_avg == 2 and routine.ratings == 1
    order_f = next(f for f in report.classes if f.sla_class == "addon_order")
    assert (order_f.ack_met, order_f.resolve_missed) == (1, 1)
    by = {a.userid: a for a in report.advisors}
    # a missed acknowledgement counts against whoever was paged, a missed resolution the holder
    assert sum(a.ack_breaches for a in report.advisors) == 2
    assert sum(a.resolve_breaches for a in report.advisors) == 3
    assert by["advisor_zhou"].resolve_breaches >= 1 and by["advisor_zhou"].rating_avg == 2
    paged = paging.clock(cases[2].id).paged_userid
    assert by[paged].ack_breaches >= 1
    text = format_report(report)
    assert "普通投诉 (complaint_routine)" in text and "Breaches by advisor" in text
    assert report.to_json()["classes"][0]["ack_met_pct"] is not None

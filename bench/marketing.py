"""`python -m bench.marketing [--guests 100000] [--database-url URL]`: how long a segment count
and a campaign render take for N guests (a benchmark, not a test: it prints figures).

It builds a throwaway CRM (a temporary SQLite file by default; or an empty PostgreSQL database
you name) with N guests: tiers, WeCom contacts and owners, marketing consent for 80 %, one to
three bookings each (past and upcoming), a tag each. Then it times, each `--repeat` times:
- `count`: `SegmentService.count` of 金卡 and above with consent (facts load + rules);
- `preview`: `CampaignService.preview` of a member-day campaign over the same segment
  (facts, consent/cap/identity checks and the render of the sample texts);
- `render`: the sandboxed template rendered for every recipient (what `send` does per guest).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

TIERS = ("普通", "银卡", "金卡", "铂金", "钻石")
PROPS = (("sanya-haitang-resort", "三亚"), ("shanghai-bund-hotel", "上海"))
TEMPLATE = (
    "{{ name }}您好！今天是{{ tier }}会员日，您的积分 {{ points }} 可在会员商城抵现。\n"
    "{% if next_stay %}期待{{ next_stay.check_in|cn_date }}在{{ next_stay.city }}见到您。"
    "{% else %}会员日预订任意门店，享会员价再9折。{% endif %}"
)


def populate(engine, n: int, today: dt.date, seed: int = 14) -> None:
    from bot.crm import models as m

    rng = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc)
    batch = 5000
    with engine.begin() as conn:
        for start in range(0, n, batch):
            conn.execute(
                m.Guest.__table__.insert(),
                [
                    {
                        "sender_id": f"bench-{i}",
                        "display_name": f"客人{i}",
                        "tier": rng.choice(TIERS),
                        "points": rng.randrange(0, 50000),
                        "wecom_external_userid": f"wm{i}",
                        "owner_userid": f"advisor_{i % 40}",
                        "is_demo": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(n, start + batch))
                ],
            )
        first = conn.exec_driver_sql("SELECT min(id) FROM guests").scalar()
        ids = range(first, first + n)
        for start in range(0, n, batch):
            chunk = ids[start : start + batch]
            conn.execute(
                m.Consent.__table__.insert(),
                [
                    {
                        "guest_id": g,
                        "purpose": "marketing",
                        "granted": rng.random() < 0.8,
                        "source": "bench",
                        "created_at": now,
                    }
                    for g in chunk
                ],
            )
            bookings = []
            for g in chunk:
                for k in range(rng.randint(1, 3)):
                    prop, city = rng.choice(PROPS)
                    check_in = today + dt.timedelta(days=rng.randint(-700, 60))
                    past = check_in < today
                    bookings.append(
                        {
                            "guest_id": g,
                            "property_id": prop,
                            "city": city,
                            "check_in": check_in,
                            "check_out": check_in + dt.timedelta(days=rng.randint(1, 5)),
                            "status": "completed" if past else "booked",
                            "party_size": 2,
                            "confirmation_no": f"B{g}-{k}",
                            "amount": rng.randint(600, 9000),
                            "channel": rng.choice(("direct", "ctrip", "meituan")),
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            conn.execute(m.Booking.__table__.insert(), bookings)
            conn.execute(
                m.PreferenceTag.__table__.insert(),
                [
                    {
                        "guest_id": g,
                        "category": "interest",
                        "value": rng.choice(("潜水", "摄影", "美食")),
                        "confidence": 1.0,
                        "active": True,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for g in chunk
                ],
            )


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.marketing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--guests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="an EMPTY database to fill (default: temp SQLite)")
    args = parser.parse_args(argv)

    from bot.crm.db import make_engine, upgrade
    from bot.crm.store import CHINA_TZ
    from bot.marketing.campaigns import CampaignService
    from bot.marketing.facts import load_facts
    from bot.marketing.policy import MarketingPolicy
    from bot.marketing.segments import parse_segment
    from bot.marketing.segments_service import SegmentService
    from bot.marketing.templates import check_template, render

    tmp = None
    url = args.database_url
    if url is None:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = make_engine(url)
    upgrade(engine)
    policy = MarketingPolicy(quiet_from=None, quiet_to=None)
    clock = lambda: dt.datetime(2026, 12, 8, 10, tzinfo=CHINA_TZ)  # noqa: E731
    today = clock().date()
    started = time.perf_counter()
    populate(engine, args.guests, today)
    print(
        f"filled {args.guests} guests in {time.perf_counter() - started:.1f} s ({url.split(':')[0]})",
        file=sys.stderr,
    )

    segment = {"tier_at_least": "金卡", "consent": "granted"}
    segments = SegmentService(engine, policy, clock=clock)
    count_times, counted = timed(lambda: segments.count(segment, today=today), args.repeat)
    campaigns = CampaignService(engine, policy, clock=clock)
    cid = campaigns.create(
        {"name": "bench", "segment": segment, "template": TEMPLATE}, actor="bench"
    )
    preview_times, preview = timed(lambda: campaigns.preview(cid), args.repeat)
    facts = parse_segment(segment).members(load_facts(engine, today), today, policy)
    template = check_template(TEMPLATE)
    render_times, _ = timed(lambda: [render(template, f, today) for f in facts], args.repeat)
    engine.dispose()
    if tmp is not None:
        tmp.cleanup()

    def fig(times):
        return (
            f"median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f})"
        )

    print(
        f"guests: {args.guests}; segment members: {counted['count']}; "
        f"preview recipients: {preview['recipients']}"
    )
    print(f"segment count            {fig(count_times)}")
    print(f"campaign preview (dry run) {fig(preview_times)}")
    print(f"render {len(facts)} texts    {fig(render_times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark (not a test): `concierge bookings import` of a large PMS export.

    python -m bench.bookings_import [--rows 100000] [--backends sqlite,postgres]
    make bench-bookings            (the same, figures to results/bench/bookings_import.json)

For each backend: a fresh, migrated database; a generated GBK CSV with Chinese headers shaped
like a real export (two properties, ~40% repeat guests by phone, mixed date formats, a few
bad rows); then, each in a child process of its own (so peak RSS is the import's alone):
1. the first import (everything created), 2. the same file again (everything unchanged),
3. the file with 10% of the bookings moved (updated). Prints rows/s, wall time and peak RSS.
PostgreSQL comes from BENCH_PG_URL (default postgresql+psycopg2://postgres@127.0.0.1:5432/test,
a throw-away database is created next to it and dropped after).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HEADERS = [
    "酒店代码",
    "订单号",
    "姓名",
    "手机",
    "入住日期",
    "离店日期",
    "房型",
    "人数",
    "状态",
    "渠道",
    "金额",
    "会员等级",
    "生日",
    "备注",
]
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华晓"


def _date(day: dt.date, style: int) -> str:
    if style == 0:
        return day.isoformat()
    if style == 1:
        return f"{day.year}/{day.month}/{day.day}"
    return f"{day.year}年{day.month}月{day.day}日"


def generate(path: Path, rows: int, *, seed: int = 13, moved_share: float = 0.0) -> None:
    rng = random.Random(seed)
    move = random.Random(seed + 1)
    guests = max(rows * 6 // 10, 1)
    base = dt.date(2025, 1, 1)
    with open(path, "w", encoding="gbk", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HEADERS)
        for i in range(rows):
            g = rng.randrange(guests)
            check_in = base + dt.timedelta(days=rng.randrange(700))
            if moved_share and move.random() < moved_share:
                check_in += dt.timedelta(days=1)
            nights = rng.randint(1, 6)
            status = rng.choice(["已离店"] * 6 + ["已确认"] * 3 + ["已取消"])
            phone = f"13{g % 10}{g:08d}"
            if i % 997 == 5:
                phone = "12345"  # a bad row now and then, as real exports have
            out.writerow(
                [
                    rng.choice(["SYHT01", "SHBD01"]),
                    f"B{i:08d}",
                    SURNAMES[g % len(SURNAMES)] + GIVEN[g % len(GIVEN)],
                    phone,
                    _date(check_in, i % 3),
                    _date(check_in + dt.timedelta(days=nights), (i + 1) % 3),
                    rng.choice(["大床房", "双床房", "海景房", "行政房"]),
                    rng.randint(1, 4),
                    status,
                    rng.choice(["携程", "美团", "飞猪", "官网", "前台"]),
                    f"{rng.randint(400, 6000)}.00",
                    rng.choice(["普通", "普通", "银卡", "金卡", "铂金"]),
                    "",
                    "",
                ]
            )


def run_import(db_url: str, path: str) -> dict:
    """One import in this process; returns counts, seconds and peak RSS (MB)."""
    from bot.bookings.importer import BookingImporter
    from bot.bookings.writer import BookingWriter
    from bot.crm.db import make_engine
    from bot.knowledge.kb import KnowledgeBase

    engine = make_engine(db_url)
    importer = BookingImporter(BookingWriter(engine), KnowledgeBase.default())
    start = time.perf_counter()
    report = importer.import_file(path)
    seconds = time.perf_counter() - start
    engine.dispose()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = report.created + report.updated + report.unchanged + len(report.rejected)
    return {
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": len(report.rejected),
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(rss_mb),
    }


def _child(db_url: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bookings_import", "--child", db_url, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CRM_ENCRYPTION_KEY": _key()},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _key() -> str:
    from cryptography.fernet import Fernet

    return os.environ.get("CRM_ENCRYPTION_KEY") or _KEY.setdefault(
        "k", Fernet.generate_key().decode()
    )


_KEY: dict = {}


def _pg_database() -> tuple[str, callable]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(PG_URL)
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return server.set(database=name).render_as_string(hide_password=False), drop


def bench(rows: int, backends: list[str]) -> dict:
    from bot.crm.db import upgrade

    results: dict = {"rows": rows, "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        first, moved = Path(tmp) / "export.csv", Path(tmp) / "export_moved.csv"
        generate(first, rows)
        generate(moved, rows, moved_share=0.10)
        results["file_mb"] = round(first.stat().st_size / 2**20, 1)
        for backend in backends:
            drop = None
            if backend == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            else:
                url, drop = _pg_database()
            try:
                os.environ["CRM_ENCRYPTION_KEY"] = _key()
                upgrade(url)
                runs = {
                    "first": _child(url, first),
                    "again": _child(url, first),
                    "moved": _child(url, moved),
                }
            finally:
                if drop:
                    drop()
            runs["again_speedup"] = round(runs["first"]["seconds"] / runs["again"]["seconds"], 1)
            results[backend] = runs
            print(json.dumps({backend: runs}, ensure_ascii=False), file=sys.stderr)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="bookings import benchmark")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--out", default="results/bench/bookings_import.json")
    parser.add_argument("--child", nargs=2, metavar=("DB_URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_import(*args.child)))
        return
    results = bench(args.rows, [b.strip() for b in args.backends.split(",") if b.strip()])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()

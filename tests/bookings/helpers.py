"""Real-shaped PMS/OTA export files, written the way Excel and hotel systems write them."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

ZH_HEADERS = [
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
EN_HEADERS = [
    "property_code",
    "confirmation_no",
    "guest_name",
    "phone",
    "check_in",
    "check_out",
    "room_type",
    "party_size",
    "status",
    "channel",
    "amount",
    "tier",
    "birthday",
    "notes",
]


def write_csv(
    path: Path,
    headers: Sequence[str],
    rows: Sequence[Sequence],
    *,
    encoding: str = "utf-8",
    bom: bool = False,
    crlf: bool = True,
) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(headers)
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def write_xlsx(path: Path, headers: Sequence[str], rows: Sequence[Sequence]) -> Path:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "订单导出"
    sheet.append(list(headers))
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path

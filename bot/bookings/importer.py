"""`concierge bookings import FILE`: bookings from a PMS or OTA export.

What a hotel actually has: a CSV saved by Excel (UTF-8, UTF-8 with BOM, or GBK, which is what
Chinese Excel writes) or an XLSX workbook (first sheet), with a header row in Chinese or English
(the names `bot.bookings.rows.HEADERS` accepts; extra columns are ignored).

- Row numbers are the spreadsheet's: the header is row 1, the first booking row 2. Blank rows
  are skipped (and keep their numbers).
- Every row is checked (`bot.bookings.rows.parse_row`) before anything is written; a row that
  cannot be used is rejected with its number and reason, the others go on. A second row with
  the same (property, confirmation no) is rejected as a duplicate of the first.
- Rows are written in batches (`bot.bookings.writer.BookingWriter`): a batch is one
  transaction, and a row is never half-written. `dry_run` rolls every batch back, so its counts
  are what a real run would report.
- A file that cannot be read at all (missing, not CSV/XLSX, neither UTF-8 nor GBK, no header,
  a required column missing) raises `ImportFileError`: nothing is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from bot.bookings.rows import BookingRow, RowError, map_headers, parse_row
from bot.bookings.writer import BookingChange, BookingWriter
from bot.knowledge.kb import KnowledgeBase

BATCH_ROWS = 2000
MAX_FILE_BYTES = 200 * 1024 * 1024  # an export this big is a mistake, not a hotel's bookings
_ENCODINGS = ("utf-8-sig", "gb18030")  # gb18030 reads every GBK file (and a little more)


class ImportFileError(Exception):
    """The file as a whole cannot be read; the message says why."""


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0  # only from a PMS push: an older version than the one stored
    rejected: list[dict] = field(default_factory=list)  # {"row": n, "reason": "..."}
    changes: list[BookingChange] = field(default_factory=list)
    dry_run: bool = False

    def to_json(self) -> dict:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": sorted(self.rejected, key=lambda r: r["row"]),
        }


def read_table(path: str | Path) -> Iterator[tuple[int, list[Any]]]:
    """(row number, cells) of every row, header first; raises ImportFileError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise ImportFileError(f"{path} is empty")
    if size > MAX_FILE_BYTES:
        raise ImportFileError(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MB")
    if head.startswith(b"PK\x03\x04"):
        return _xlsx_rows(path)
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        raise ImportFileError(f"{path} is not an XLSX workbook (old .xls: save it as .xlsx or CSV)")
    return _csv_rows(path)


def _csv_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise ImportFileError(f"{path} is binary, not a CSV text file (UTF-16? save as UTF-8)")
    for encoding in _ENCODINGS:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ImportFileError(f"{path} is neither UTF-8 nor GBK text")
    del data
    first_line = text.split("\n", 1)[0]
    # Excel's "Unicode text" export is tab-separated; everything else here is comma-separated.
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for number, cells in enumerate(reader, start=1):
                yield number, cells
        except csv.Error as exc:
            raise ImportFileError(
                f"{path}: malformed CSV near line {reader.line_num}: {exc}"
            ) from None

    return rows()


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    from openpyxl import load_workbook  # imported here: only XLSX imports need it
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise ImportFileError(f"{path} is not a readable XLSX workbook: {exc}") from None

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            sheet = workbook.worksheets[0]
            for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, list(cells)
        finally:
            workbook.close()

    return rows()


def _blank(cells: Sequence[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


class BookingImporter:
    """Reads a file and upserts its bookings; `on_changes` gets the moved/cancelled bookings
    after each committed batch (the re-planning of what depended on them)."""

    def __init__(
        self,
        writer: BookingWriter,
        kb: KnowledgeBase,
        *,
        on_changes: Callable[[list[BookingChange]], None] | None = None,
        batch_rows: int = BATCH_ROWS,
    ):
        self.writer = writer
        self.kb = kb
        self.on_changes = on_changes
        self.batch_rows = batch_rows

    def import_file(
        self, path: str | Path, *, dry_run: bool = False, as_of: dt.date | None = None
    ) -> ImportReport:
        table = read_table(path)
        header = next(((n, cells) for n, cells in table if not _blank(cells)), None)
        if header is None:
            raise ImportFileError(f"{path} has no header row")
        try:
            columns = map_headers(header[1])
        except RowError as exc:
            raise ImportFileError(f"{path}: {exc}") from None

        report = ImportReport(dry_run=dry_run)
        seen: dict[tuple[str, str], int] = {}
        batch: list[tuple[int, BookingRow]] = []
        for number, cells in table:
            if _blank(cells):
                continue
            raw = {name: cells[i] if i < len(cells) else None for i, name in columns.items()}
            try:
                row = parse_row(raw, self.kb)
            except RowError as exc:
                report.rejected.append({"row": number, "reason": str(exc)})
                continue
            first = seen.setdefault(row.key, number)
            if first != number:
                report.rejected.append(
                    {
                        "row": number,
                        "reason": (
                            f"duplicate of row {first} (same property and confirmation_no "
                            f"{row.confirmation_no})"
                        ),
                    }
                )
                continue
            batch.append((number, row))
            if len(batch) >= self.batch_rows:
                self._flush(batch, report, dry_run=dry_run, as_of=as_of)
                batch = []
        self._flush(batch, report, dry_run=dry_run, as_of=as_of)
        return report

    def _flush(self, batch, report: ImportReport, *, dry_run: bool, as_of) -> None:
        if not batch:
            return
        result = self.writer.write(batch, dry_run=dry_run, as_of=as_of)
        for outcome in result.outcomes.values():
            setattr(report, outcome, getattr(report, outcome) + 1)
        report.rejected.extend({"row": n, "reason": r} for n, r in result.rejected.items())
        report.changes.extend(result.changes)
        if result.changes and not dry_run and self.on_changes is not None:
            self.on_changes(result.changes)

"""`pingjia export`: every rating, oldest first, as CSV (the header below, exactly),
an Excel workbook (xlsx, openpyxl) or JSON. Ratings whose time is still unknown (their
boot's clock never synced) have an empty time and come last.

What the office opens in a spreadsheet is inert: a text cell that a spreadsheet would
run as a formula (one starting with = + - @, a tab or a carriage return, as a ticket or
a name can) gets a leading apostrophe in the CSV, and is written as a plain string cell
(never a formula) in the workbook. The CSV starts with a BOM, so Excel reads it as
UTF-8 rather than as the local code page."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

HEADER = ("time", "window", "device", "staff_no", "staff_name", "ticket", "level",
          "level_name", "reason")
FORMATS = ("csv", "xlsx", "json", "haochaping", "haochaping-jsonl")
MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "json": "application/json",
         "haochaping": "text/csv; charset=utf-8",
         "haochaping-jsonl": "application/x-ndjson; charset=utf-8"}
SUFFIX = {"haochaping": "haochaping.csv", "haochaping-jsonl": "haochaping.jsonl"}
BOM = "\ufeff"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
API_ROWS_MAX = 200_000  # an export over HTTP; more: narrow the dates, or the CLI


def inert(value: Any) -> Any:
    """A cell value no spreadsheet runs: text that would start a formula is prefixed
    with an apostrophe (OWASP's advice for CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _cells(r: dict[str, Any]) -> list[Any]:
    return [r[k] if r[k] is not None else "" for k in HEADER]


def to_csv(rows: list[dict[str, Any]], bom: bool = True) -> str:
    out = io.StringIO()
    if bom:
        out.write(BOM)
    # CRLF ends a row, as RFC 4180 and Excel have it: then a CR or LF inside a cell gets
    # the cell quoted (with "\n" alone a bare CR would split the row in Excel)
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(HEADER)
    for r in rows:
        w.writerow([inert(v) for v in _cells(r)])
    return out.getvalue()


def to_xlsx(rows: list[dict[str, Any]]) -> bytes:
    """The ratings as one sheet; every text cell a string cell (type s), so nothing in
    it is a formula whatever it starts with."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import TYPE_STRING

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("ratings")
    ws.append(list(HEADER))
    for r in rows:
        cells = []
        for v in _cells(r):
            cell = WriteOnlyCell(ws, value=v)
            if isinstance(v, str):
                cell.data_type = TYPE_STRING  # openpyxl would take "=..." for a formula
            cells.append(cell)
        ws.append(cells)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    keep = HEADER + ("log", "seq", "mode")
    return json.dumps([{k: r[k] for k in keep} for r in rows], ensure_ascii=False, indent=1)


def encode(fmt: str, rows: list[dict[str, Any]], db: Any = None) -> bytes:
    """The ratings in a format; the 好差评 formats read each device's hall from db."""
    if fmt in ("haochaping", "haochaping-jsonl"):
        from host_tools.collector import haochaping

        return haochaping.encode(fmt, rows, haochaping.halls(db))
    if fmt == "csv":
        return to_csv(rows).encode("utf-8")
    if fmt == "xlsx":
        return to_xlsx(rows)
    if fmt == "json":
        return (to_json(rows) + "\n").encode("utf-8")
    raise ValueError(f"format must be one of {', '.join(FORMATS)}")


def render(fmt: str, collector: Any, flt: Any) -> bytes:
    """An export over HTTP (viewer role): bounded, so one request cannot hold a year."""
    from host_tools.collector import reports

    c = collector
    page = reports.ratings_page(c.db, c.hall_tz_min(), flt, "", API_ROWS_MAX + 1)
    if len(page["rows"]) > API_ROWS_MAX:
        raise ValueError(f"more than {API_ROWS_MAX} ratings: narrow the dates (from, to) or "
                         "use pingjia export on the collector's host")
    return encode(fmt, page["rows"], c.db)

"""Export for the office (host_tools/collector/export.py): a malicious ticket or name is
inert in the CSV (apostrophe before a formula start, a BOM so Excel reads UTF-8), in the
xlsx workbook (string cells, never formulas) and on the dashboard (escaped)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from firmware import frame, record
from firmware.clock import days_from_civil
from host_tools.collector import export, reports
from host_tools.collector.server import SYNC_PATH
from host_tools.collector.store import Collector

ROOT = Path(__file__).resolve().parents[1]
T = days_from_civil(2026, 11, 23) * 86400 + 2 * 3600  # 10:00 +08:00
EVIL_TICKETS = ['=HYPERLINK("http://e.vil")', "+1+2", "-3+4", "@SUM(A1)", "\t=1", "\r=1"]
EVIL_NAMES = ["=1+2", "@A1", "<b>x</b>"]
ROSTER = ("badge_uid,staff_no,name,department,windows\n"
          + "".join(f"0A0B0C{i:02X},-S{i},{n},d,B01\n" for i, n in enumerate(EVIL_NAMES, 1)))


def rating_records(first: int, ticket: str, level: int, slot: int, t: int) -> list[bytes]:
    out = [bytes(record.pack(first + i, record.TICKET, *ch)) for i, ch in
           enumerate(record.ticket_chunks(ticket))]
    out.append(bytes(record.pack(first + len(out), record.RATING, level, 0, slot, t)))
    return out


@pytest.fixture
def evil(db_url):
    """A collector holding ratings with tickets and names that would run in a
    spreadsheet."""
    c = Collector(db_url, lambda: T)
    c.import_roster_bytes(ROSTER.encode())
    key = bytes.fromhex(c.add_device("ev-1", "B01"))
    recs: list[bytes] = []
    for i, ticket in enumerate(EVIL_TICKETS):
        recs += rating_records(len(recs) + 1, ticket, 1 + i % 4, 1 + i % 3, T - 600 + i)
    c.ingest(frame.request(key, "ev-1", 7, 1, 1, b"".join(recs), nonce=T))
    yield c
    c.db.close()


def test_csv_cells_are_inert_and_start_with_a_bom(evil):
    rows = reports.ratings(evil.db, 480)
    assert sorted(r["ticket"] for r in rows) == sorted(EVIL_TICKETS)  # stored as they came
    text = export.to_csv(rows)
    assert text.startswith("\ufefftime,window,device,staff_no,staff_name,ticket,level,")
    got = list(csv.reader(io.StringIO(text[1:])))
    assert got[0] == list(export.HEADER)
    for row in got[1:]:
        for cell in row:
            assert not cell.startswith(export.FORMULA_START), row
    tickets = sorted(r[5] for r in got[1:])
    assert tickets == sorted("'" + t for t in EVIL_TICKETS)  # the text kept, made inert
    assert {r[4] for r in got[1:]} == {"'=1+2", "'@A1", "<b>x</b>"}
    assert {r[3] for r in got[1:]} == {"'-S1", "'-S2", "'-S3"}


def test_xlsx_cells_are_strings_never_formulas(evil, tmp_path):
    data = export.to_xlsx(reports.ratings(evil.db, 480))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = next(n for n in z.namelist() if n.startswith("xl/worksheets/"))
        xml = z.read(sheet).decode()
    assert "<f>" not in xml and "<f " not in xml  # no formula anywhere
    ws = load_workbook(io.BytesIO(data)).active
    rows = list(ws.iter_rows(values_only=False))
    assert [c.value for c in rows[0]] == list(export.HEADER)
    tickets = []
    for row in rows[1:]:
        for cell in row:
            if isinstance(cell.value, str):
                assert cell.data_type == "s", (cell.coordinate, cell.value)
        tickets.append(row[5].value)
    # as typed, a string cell needs no quote (XML reads a CR back as a LF)
    assert sorted(tickets) == sorted(t.replace("\r", "\n") for t in EVIL_TICKETS)
    assert rows[1][6].value in (1, 2, 3, 4)  # the level stays a number


def test_export_command_csv_xlsx_json(evil, tmp_path):
    db = evil.db.url
    evil.db.close()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "host_tools.cli", "export", "--db", db,
                               *args], capture_output=True, cwd=ROOT, timeout=60)

    out = tmp_path / "r.xlsx"
    assert run("--format", "xlsx", "--out", str(out)).returncode == 0
    assert load_workbook(out).active.max_row == 1 + len(EVIL_TICKETS)
    r = run("--format", "csv")
    assert r.returncode == 0 and r.stdout.startswith("\ufeff".encode())
    assert b"'=HYPERLINK" in r.stdout
    r = run("--format", "json")
    assert {x["ticket"] for x in json.loads(r.stdout)} == set(EVIL_TICKETS)  # data, not cells
    r = run("--format", "csv", "--staff=-S1")
    assert r.returncode == 0 and r.stdout.decode().count("\n") == 1 + 2  # two of six
    r = run("--format", "csv", "--from", "2026-11-24")
    assert r.stdout.decode().count("\n") == 1
    r = run("--format", "csv", "--from", "2026-11-24", "--to", "2026-11-23")
    assert r.returncode == 2 and b"backwards" in r.stderr


def test_export_and_dashboard_over_http(served):
    c = served.collector
    c.import_roster_bytes(ROSTER.encode())
    key = bytes.fromhex(c.add_device("ev-2", "B01"))
    recs = rating_records(1, EVIL_TICKETS[0], 4, 3, served.t - 60)
    assert served.call("POST", SYNC_PATH, frame.request(key, "ev-2", 7, 1, 1, b"".join(recs),
                                                    nonce=served.t))[0] == 200
    token = served.tokens["viewer"]
    s, h, body = served.call("GET", "/api/v1/export?format=xlsx&day=2026-11-23", token=token)
    assert s == 200 and h["content-type"][0].startswith("application/vnd.openxmlformats")
    assert "attachment" in h["content-disposition"][0]
    assert load_workbook(io.BytesIO(body)).active["F2"].value == EVIL_TICKETS[0]
    s, h, body = served.call("GET", "/api/v1/export?format=csv", token=token)
    assert s == 200 and body.startswith("\ufeff".encode()) and b"'=HYPERLINK" in body
    assert served.call("GET", "/api/v1/export?format=xml", token=token)[0] == 400
    s, _h, page = served.call("GET", "/?day=2026-11-23", token=token)
    html = page.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "=HYPERLINK(&#34;http://e.vil&#34;)" in html or "=HYPERLINK(&quot;" in html

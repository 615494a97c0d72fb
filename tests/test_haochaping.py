"""`pingjia export --format haochaping|haochaping-jsonl` and /api/v1/export?format=...: the
national 好差评 fields (国办发〔2019〕51号), the keys 1-4 as levels 5-2, a CSV the office opens
safely (BOM, CRLF, formulas made inert), JSON lines, from ratings made through real frames."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from types import SimpleNamespace

import pytest

from firmware import record
from host_tools.collector import cases, haochaping, reports

EPOCH_2000 = 946684800
HEADER = ("评价编号,办件编号,服务大厅,窗口,评价器编号,工号,工作人员,评价时间,评价等级,"
          "评价等级名称,是否差评,评价渠道,评价终端,评价方式,差评原因")
EVIL = '=HYPERLINK("http://e.vil")'


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp()) - EPOCH_2000


@pytest.fixture
def rated(served_on, device_log, tmp_path):
    """served_on with one window of hall 东区 rated with each key once (the 不满意 with a
    reason), a ticket that would run in a spreadsheet, and a kiosk-mode rating."""
    s = served_on
    c = s.collector
    roster = tmp_path / "staff.csv"
    roster.write_text("badge_uid,staff_no,name,department,windows\n"
                      "0A1B2C3D,SB0101,张伟,社保服务,E01\n", encoding="utf-8")
    c.import_roster(roster)
    door = SimpleNamespace(add_device=lambda d, w: c.add_device(d, w, hall="东区"),
                           ingest=c.ingest)
    d = device_log(door, "hc-1", "E01")
    t = at("2026-11-23T09:00:00+08:00")
    d.add(record.BOOT, 1, time=t)
    d.rating(1, t + 10, ticket=EVIL)
    d.rating(2, t + 20, ticket="20261123-0002")
    d.rating(3, t + 30)
    bad = d.rating(4, t + 40, ticket="20261123-0004")
    d.add(record.REASON, 2, 0, 1, bad)  # 服务态度不好
    d.rating(2, t + 50, mode=1)  # free mode: a kiosk, no invitation
    d.send()
    return s


def test_the_csv_has_the_national_fields_and_levels(rated, cli, db_url, tmp_path):
    out = tmp_path / "hcp.csv"
    p = cli("export", "--db", db_url, "--format", "haochaping", "--out", out)
    assert p.returncode == 0, p.stderr
    raw = out.read_bytes().decode("utf-8")
    assert raw.startswith("\ufeff" + HEADER + "\r\n") and raw.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(raw[1:])))
    assert [(r["评价等级"], r["评价等级名称"], r["是否差评"]) for r in rows] == [
        ("5", "非常满意", "0"), ("4", "满意", "0"), ("3", "基本满意", "0"), ("2", "不满意", "1"),
        ("4", "满意", "0")]
    first, bad, kiosk = rows[0], rows[3], rows[4]
    assert first["办件编号"] == "'" + EVIL  # kept, made inert
    assert first["评价编号"] == f"hc-1-0-{len(record.ticket_chunks(EVIL)) + 2}"
    assert bad["评价编号"] == [k["id"] for k in cases.list_cases(
        rated.collector, reports.Filter()).cases][0]  # a 差评's id is its case's
    assert (first["服务大厅"], first["窗口"], first["评价器编号"]) == ("东区", "E01", "hc-1")
    assert (first["工号"], first["工作人员"]) == ("SB0101", "张伟")
    assert first["评价时间"] == "2026-11-23 09:00:10"
    assert (first["评价渠道"], first["评价终端"], first["评价方式"]) == ("现场", "窗口评价器", "邀请评价")
    assert (bad["办件编号"], bad["差评原因"]) == ("20261123-0004", "服务态度不好")
    assert kiosk["评价方式"] == "自助评价" and kiosk["差评原因"] == ""
    assert len({r["评价编号"] for r in rows}) == len(rows)
    for r in rows:
        assert not any(v.startswith(("=", "+", "-", "@")) for v in r.values()), r


def test_json_lines_carry_the_same_records(rated, cli, db_url, tmp_path):
    out = tmp_path / "hcp.jsonl"
    p = cli("export", "--db", db_url, "--format", "haochaping-jsonl", "--out", out)
    assert p.returncode == 0, p.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    recs = [json.loads(line) for line in lines]
    assert all(list(r) == [k for k, _c, _s in haochaping.FIELDS] for r in recs)
    assert [(r["level"], r["levelName"], r["isBad"]) for r in recs] == [
        (5, "非常满意", 0), (4, "满意", 0), (3, "基本满意", 0), (2, "不满意", 1), (4, "满意", 0)]
    assert recs[0]["projectNo"] == EVIL  # JSON is no spreadsheet: the ticket as it came
    assert recs[3]["badReason"] == "服务态度不好" and recs[3]["hallName"] == "东区"


def test_the_api_serves_both_to_viewers(rated):
    s = rated
    status, headers, body = s.call("GET", "/api/v1/export?format=haochaping",
                                   token=s.tokens["viewer"])
    assert status == 200 and headers["content-type"][0].startswith("text/csv")
    assert 'filename="pingjia-all.haochaping.csv"' in headers["content-disposition"][0]
    assert body.decode("utf-8").startswith("\ufeff" + HEADER + "\r\n")
    status, headers, body = s.call("GET", "/api/v1/export?format=haochaping-jsonl&day=2026-11-23",
                                   token=s.tokens["viewer"])
    assert status == 200 and headers["content-type"][0].startswith("application/x-ndjson")
    assert len(body.decode().splitlines()) == 5
    assert s.call("GET", "/api/v1/export?format=haochaping")[0] == 401
    assert s.call("GET", "/api/v1/export?format=haochaping", token=s.tokens["queue"])[0] == 403
    status, _h, body = s.call("GET", "/api/v1/export?format=haochaping2",
                              token=s.tokens["viewer"])
    assert status == 400 and "haochaping-jsonl" in json.loads(body)["error"]


def test_a_bad_format_on_the_cli(cli, tmp_path):
    p = cli("export", "--db", tmp_path / "x.db", "--format", "haochaping.csv")
    assert p.returncode == 2 and "invalid choice" in p.stderr and "haochaping" in p.stderr
    assert p.stderr.count("\n") == 1 and not (tmp_path / "x.db").exists()

"""The collector over HTTP on 127.0.0.1: the sync endpoint refuses bad frames with
a clear 4xx and keeps serving; the JSON API, dashboard and CLI."""

from __future__ import annotations

import http.client
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import frame, record
from host_tools.collector.server import ServerThread
from host_tools.collector.store import Collector


@pytest.fixture(scope="module")
def server(module_db_url, clock_at, t0, roster_csv):
    c = Collector(module_db_url, clock_at(t0 + 3600))
    c.import_roster(roster_csv)
    s = ServerThread(c)
    s.token = c.users.add("tester", "viewer")  # type: ignore[attr-defined]
    yield s
    s.stop()


def post(port: int, body: bytes, path: str = "/api/v1/sync") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def stored(table_rows):
    """What a refused request must leave as it was: the records and what reports read."""
    return lambda c: table_rows(c, "records", "events")


def test_sync_over_http_and_refusals(server, device_log, stored, t0):
    c = server.collector
    d = device_log(c, "http-1")
    d.add(record.BOOT, 1, time=t0)
    d.rating(2, t0 + 10, ticket="T-1")
    body = d.frame()
    status, ans = post(server.port, body)
    assert status == 200
    assert frame.parse_answer(ans, frame.Hmac(d.key), body[-32:])[0] == d.seq
    before = stored(c)
    cases = [
        (body[:-5], 400, "truncated"),
        (body + b"zz", 413, "oversized"),
        (b"hello", 400, "bad_magic"),
        (frame.request(b"z" * 16, "http-1", 7, 1, 1, b"".join(d.log)), 401, "bad_mac"),
        (frame.request(d.key, "ghost", 7, 1, 1, b""), 403, "unknown_device"),
        (b"PJ\x01" + bytes(frame.frame_size(frame.ID_MAX, frame.MAX_RECORDS)), 413, "oversized"),
    ]
    for b, code, why in cases:
        s, text = post(server.port, b)
        assert s == code and text.decode().startswith(f"refused: {why}"), (why, s, text)
    assert stored(c) == before
    s, text = post(server.port, body)  # the same request again: a replay
    assert s == 409 and text.startswith(b"refused: replayed"), text
    assert stored(c) == before
    assert post(server.port, d.frame())[0] == 200  # the same records, a new nonce: fine
    assert stored(c) == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300),
                 st.tuples(st.integers(0, 120), st.integers(0, 255), st.integers(0, 3))))
def test_fuzz_endpoint(server, device_log, stored, t0, case):
    c = server.collector
    if "fuzz-1" not in {x["id"] for x in c.devices()}:
        d = device_log(c, "fuzz-1")
        d.rating(1, t0)
        test_fuzz_endpoint.good = d.frame()  # type: ignore[attr-defined]
        assert post(server.port, test_fuzz_endpoint.good)[0] == 200  # type: ignore
    good = test_fuzz_endpoint.good  # type: ignore[attr-defined]
    if isinstance(case, tuple):
        pos, val, cut = case
        b = bytearray(good)
        b[pos % len(b)] = val
        body = bytes(b[: len(b) - cut])
    else:
        body = case
    before = stored(c)
    status, text = post(server.port, body)
    if body == good:
        assert status == 409  # taken before: a replay
    else:
        assert 400 <= status < 500 and text.startswith(b"refused: "), (status, text)
    assert stored(c) == before
    assert get(server.port, "/api/v1/devices", server.token)[0] == 200  # still serving


def test_api_and_dashboard(server, device_log, t0):
    c = server.collector
    d = device_log(c, "dash-1", window="B02")
    d.add(record.STATUS, record.SERVING | record.PAUSED << 4, record.WHY_BADGE, 1, t0)
    d.rating(4, t0 + 100, ticket="Q-9")
    d.add(record.REASON, 1, 0, 1, d.seq)
    assert post(server.port, d.frame())[0] == 200
    token = server.token
    s, page = get(server.port, "/?day=2026-11-23", token)
    html = page.decode()
    assert s == 200 and "<td>B02</td>" in html and "服务中" in html and "等候时间长" in html
    assert "Q-9" in html and "满意率" in html
    s, body = get(server.port, "/api/v1/report?day=2026-11-23&by=window", token)
    rows = {r["window"]: r for r in json.loads(body)["rows"]}
    assert s == 200 and rows["B02"]["ratings"] == 1 and rows["B02"]["bad_rate"] == 1.0
    s, body = get(server.port, "/api/v1/ratings?day=2026-11-23", token)
    assert s == 200 and any(r["ticket"] == "Q-9" for r in json.loads(body)["rows"])
    assert get(server.port, "/api/v1/report?by=colour", token)[0] == 400
    assert get(server.port, "/api/v1/dashboard?day=2026-11-23", token)[0] == 200
    assert get(server.port, "/api/v1/sync")[0] == 405


def test_cli(tmp_path, cli, clock, roster_csv, t0, db_url):
    db = db_url
    r = cli("device", "add", "cli-1", "--window", "B01", "--db", db)
    assert r.returncode == 0 and len(r.stdout.strip()) == 32
    key = bytes.fromhex(r.stdout.strip())
    assert cli("device", "add", "cli-1", "--window", "B01", "--db", db).returncode == 2
    assert "cli-1" in cli("device", "list", "--db", db).stdout
    assert cli("roster", "import", str(roster_csv), "--db", db).returncode == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("badge_uid,staff_no\n", encoding="utf-8")
    r = cli("roster", "import", str(bad), "--db", db)
    assert r.returncode == 2 and "missing column" in r.stderr
    assert cli("settings", "set", "invite_s", "30", "--db", db).returncode == 0
    r = cli("settings", "set", "invite_s", "3", "--db", db)
    assert r.returncode == 2 and "invite_s" in r.stderr
    assert cli("settings", "set", "mode", "free", "--device", "cli-1", "--db", db).returncode == 0
    c = Collector(db, clock)
    recs = record.pack(1, record.RATING, 1, 0, 1, t0 + 60) + record.pack(2, record.RATING, 4, 0, 2, t0 + 120)
    c.ingest(frame.request(key, "cli-1", 7, 1, 1, recs))
    c.db.close()
    r = cli("export", "--format", "csv", "--db", db)
    assert r.returncode == 0 and r.stdout.startswith("\ufeff")  # the BOM Excel reads UTF-8 by
    assert r.stdout[1:].splitlines() == [
        "time,window,device,staff_no,staff_name,ticket,level,level_name,reason",
        "2026-11-23T09:01:00+08:00,B01,cli-1,SB0101,张伟,,1,非常满意,",
        "2026-11-23T09:02:00+08:00,B01,cli-1,SB0102,刘洋,,4,不满意,"]
    assert json.loads(cli("export", "--format", "json", "--db", db).stdout)[1]["level"] == 4
    r = cli("report", "--day", "2026-11-23", "--by", "staff", "--db", db)
    assert r.returncode == 0 and "SB0102 刘洋" in r.stdout
    r = cli("report", "--day", "2026-11-23", "--db", db)
    assert r.returncode == 0 and "50.0%" in r.stdout  # 满意率 and 差评率 of B01
    assert cli("report", "--by", "colour", "--db", db).returncode == 2
    assert cli("report", "--day", "23/11", "--db", db).returncode == 2
    assert cli("export", "--format", "xml", "--db", db).returncode == 2
    assert cli("device", "--db", db).returncode == 2

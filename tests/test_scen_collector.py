"""A reviewer's scenarios on the collector and its CLI (design.md sections 5, 6 and 8) that
the other tests left out: arguments a person gets wrong, fields of the wrong JSON type, a
hall nobody serves. Each is refused in one line (exit 2) or a 4xx JSON, and changes
nothing."""

from __future__ import annotations

import json
import subprocess

import pytest


def refused(p: subprocess.CompletedProcess, *words: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pingjia: "), p.stderr
    assert "Traceback" not in p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def state(cli, db: str) -> tuple[str, ...]:
    """What the office would see changed: devices, settings, cases."""
    return tuple(cli(*cmd, "--db", db).stdout for cmd in (
        ("device", "list"), ("settings", "show"), ("case", "list", "--json")))


@pytest.fixture
def hall_db(tmp_path, db_url, cli) -> str:
    db = db_url if db_url.startswith("postgresql://") else str(tmp_path / "hall.db")
    assert cli("device", "add", "b01-1", "--window", "B01", "--db", db).returncode == 0
    return db


@pytest.mark.parametrize("limit", ["0", "-1", "1001"])
def test_case_list_limit_out_of_range_is_one_line(cli, hall_db, limit):
    # --limit 0 was an IndexError traceback, -1 a silent "no cases"
    refused(cli("case", "list", "--limit", limit, "--db", hall_db),
            "limit must be a whole number from 1 to 1000")


def test_settings_for_a_hall_nobody_serves_is_refused(cli, hall_db):
    before = state(cli, hall_db)
    refused(cli("settings", "set", "invite_s", "20", "--hall", "nohall", "--db", hall_db),
            "no hall 'nohall'")
    assert state(cli, hall_db) == before
    # the one hall of a small install, and a hall a device serves in, take settings
    assert cli("settings", "set", "invite_s", "20", "--hall", "main", "--db",
               hall_db).returncode == 0
    assert cli("device", "add", "e01-1", "--window", "E01", "--hall", "东区", "--db",
               hall_db).returncode == 0
    assert cli("settings", "set", "invite_s", "25", "--hall", "东区", "--db",
               hall_db).returncode == 0


@pytest.mark.parametrize("args, words", [
    (["sign", "preview", "--out", "/dev/null/x"], ["--out /dev/null/x", "Not a directory"]),
    (["sign", "preview", "--out", "x", "--fonts", "."], ["no pj.pjf there"]),
    (["fontgen", "--font", "missing.ttc", "--out", "f"], ["--font missing.ttc"]),
])
def test_sign_tools_refuse_bad_paths_in_one_line(cli, args, words):
    refused(cli(*args), *words)


@pytest.mark.parametrize("body, words", [
    ({"id": None, "window": "B02"}, "device id ''"),
    ({"id": 5, "window": "B02"}, "id must be text"),
    ({"id": "b02-1", "window": [1]}, "window must be text"),
    ({"id": "b02-1", "window": None}, "window ''"),
    ({"id": "b02-1", "window": "B02", "hall": 7}, "hall must be text"),
])
def test_api_device_add_refuses_fields_that_are_not_text(served, body, words):
    before = served.collector.devices()
    s, _h, text = served.call("POST", "/api/v1/devices", json.dumps(body).encode(),
                              served.tokens["admin"])
    assert s == 400 and words in json.loads(text)["error"], (s, text)
    assert served.collector.devices() == before


@pytest.mark.parametrize("extra", [{"device": 5}, {"hall": ["main"]}, {"key": ["invite_s"]}])
def test_api_settings_refuse_fields_that_are_not_text(served, extra):
    served.collector.add_device("b03-1", "B03")
    before = served.collector.settings_for("b03-1")
    body = {"key": "invite_s", "value": 30, **extra}
    s, _h, text = served.call("POST", "/api/v1/settings", json.dumps(body).encode(),
                              served.tokens["admin"])
    assert s == 400 and "must be text" in json.loads(text)["error"], (s, text)
    assert served.collector.settings_for("b03-1") == before


BIG = "9" * 24  # beyond 64 bits: SQLite's INTEGER cannot bind it


@pytest.mark.parametrize("path", [
    "/api/v1/report?hall=%00", "/api/v1/ratings?window=%00", "/api/v1/bad?staff=%00",
    "/api/v1/export?hall=%00", "/api/v1/evaluation?window=%00", "/api/v1/cases?staff=%00",
    "/api/v1/dashboard?hall=%00", "/api/v1/dashboard/export?window=%00",
    f"/api/v1/ratings?after=1|d1|{BIG}", f"/api/v1/bad?after=1|d1|{BIG}",
    f"/api/v1/flags?after=1|d1|{BIG}", f"/api/v1/cases?after=1|d1|{BIG}",
    f"/api/v1/alerts?after={BIG}",
])
def test_values_the_database_cannot_hold_are_a_400(served, path):
    # a NUL was a 500 on PostgreSQL (its text cannot hold one), a huge cursor on SQLite;
    # PostgreSQL compares a huge cursor as a numeric: a page past the end, also right
    s, _h, text = served.call("GET", path, token=served.tokens["viewer"])
    if BIG in path and served.collector.db.postgres:
        assert s == 200 and json.loads(text)["next"] is None, (s, text)
    else:
        assert s == 400 and json.loads(text)["error"], (s, text)


@pytest.mark.parametrize("path", [f"/api/v1/alerts/{BIG}/close",
                                  f"/api/v1/webhooks/{BIG}/remove",
                                  "/api/v1/devices/%00/rekey"])
def test_ids_the_database_cannot_hold_are_a_4xx(served, path):
    s, _h, text = served.call("POST", path, b"{}", token=served.tokens["admin"])
    assert 400 <= s < 500, (s, text)


def test_cli_cursor_beyond_64_bits_is_one_line(cli, hall_db):
    p = cli("case", "list", "--after", f"1|b01-1|{BIG}", "--db", hall_db)
    if hall_db.startswith("postgresql://"):  # a page past the end
        assert p.returncode == 0 and p.stdout == "no cases\n", p
    else:
        refused(p, "a value that cannot be stored or looked up")


@pytest.mark.parametrize("body", [{"action": ["note"], "text": "x"},
                                  {"action": "decide", "decision": ["upheld"], "text": "x"}])
def test_case_action_of_the_wrong_json_type_is_a_400(served, body):
    from firmware import frame, record

    c = served.collector
    key = bytes.fromhex(c.add_device("d1", "B01"))
    c.ingest(frame.request(key, "d1", 7, 1, 1, record.pack(1, record.RATING, 4, 0, 0, served.t),
                           nonce=1))
    before = c.db.all("SELECT * FROM case_actions")
    s, _h, text = served.call("POST", "/api/v1/cases/d1-7-1", json.dumps(body).encode(),
                              served.tokens["admin"])
    assert s == 400 and json.loads(text)["error"], (s, text)
    assert c.db.all("SELECT * FROM case_actions") == before


def test_an_empty_alert_list_says_so(cli, hall_db):
    # it printed nothing at all, unlike case list and webhook list
    r = cli("alert", "list", "--db", hall_db)
    assert r.returncode == 0 and r.stdout == "no open alerts\n", r
    r = cli("alert", "list", "--state", "all", "--db", hall_db)
    assert r.returncode == 0 and r.stdout == "no alerts\n", r


def test_provision_with_a_bad_sync_url_registers_nothing(cli, hall_db, tmp_path):
    # the URL was checked after the device was registered: refused, yet `ok1` stayed
    before = state(cli, hall_db)
    refused(cli("provision", str(tmp_path / "no-such-port"), "--device", "ok1", "--window",
                "B01", "--url", "notaurl", "--db", hall_db), "sync_url 'notaurl'")
    assert state(cli, hall_db) == before


def test_serve_on_a_port_in_use_or_an_address_not_here_is_one_line(cli, hall_db):
    # it was uvicorn's log of seven lines, after "pingjia collector on ...", and exit 3
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = str(held.getsockname()[1])
        refused(cli("serve", "--port", port, "--db", hall_db, timeout=60),
                f"cannot listen on 127.0.0.1:{port}", "in use", "--port")
    assert cli("user", "add", "adm", "--role", "admin", "--db", hall_db).returncode == 0
    refused(cli("serve", "--host", "no-such-host.invalid", "--port", port, "--db", hall_db,
                timeout=60), "cannot listen on no-such-host.invalid", "--host")


@pytest.mark.parametrize("ticket", ["A\x00001", "A001\n", "\t"])
def test_invite_refuses_a_ticket_that_is_not_printable(served, ticket):
    # it went on to the device: a NUL would leave the rating without a ticket
    served.collector.add_device("d1", "B01")
    body = json.dumps({"window": "B01", "ticket": ticket}).encode()
    s, _h, text = served.call("POST", "/api/v1/invite", body, served.tokens["queue"])
    assert s == 400 and "printable" in json.loads(text)["error"], (s, text)


def test_device_and_flag_lists_filter_by_hall_and_window(served):
    """/api/v1/devices and /api/v1/flags took ?hall= and ?window= without a word and
    listed every device: a province office reading its own hall's list got all of them."""
    from urllib.parse import quote

    from firmware import frame, record

    c = served.collector
    for dev, win, hall in (("w01-1", "W01", "西区"), ("e01-1", "E01", "东区")):
        key = bytes.fromhex(c.add_device(dev, win, hall=hall))
        ahead = served.t + 7200  # past the clock window: stored with the time unknown, flagged
        recs = bytes(record.pack(1, record.RATING, 1, 1, 0, ahead))
        body = frame.request(key, dev, 7, 1, 1, recs, nonce=served.t)
        assert served.call("POST", "/api/v1/sync", body)[0] == 200

    def rows(path):
        s, _h, text = served.call("GET", quote(path, safe="/?=&"), token=served.tokens["viewer"])
        assert s == 200, (s, text)
        return json.loads(text)["rows"]

    assert {d["id"] for d in rows("/api/v1/devices")} == {"w01-1", "e01-1"}
    assert [d["id"] for d in rows("/api/v1/devices?hall=东区")] == ["e01-1"]
    assert [d["id"] for d in rows("/api/v1/devices?window=W01")] == ["w01-1"]
    assert {f["device"] for f in rows("/api/v1/flags")} == {"w01-1", "e01-1"}
    assert {f["device"] for f in rows("/api/v1/flags?hall=西区")} == {"w01-1"}
    assert rows("/api/v1/flags?hall=西区&window=E01") == []
    for bad, words in (("/api/v1/devices?hall=北区", "no hall"),
                       ("/api/v1/flags?window=Z09", "no window")):
        s, _h, text = served.call("GET", quote(bad, safe="/?=&"), token=served.tokens["viewer"])
        assert s == 400 and words in json.loads(text)["error"], (bad, s, text)

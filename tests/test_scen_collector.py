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

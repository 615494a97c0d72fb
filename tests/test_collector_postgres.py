"""The same collector on PostgreSQL: a throwaway server on 127.0.0.1 in a temp dir
(Debian's postgresql package, which `make test` installs: without it this test fails)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from firmware import record
from host_tools.collector import export, reports
from host_tools.collector.store import Collector

# Debian keeps the server's programs out of PATH, one folder per major version
DEBIAN_PG = Path("/usr/lib/postgresql")


def pg_bin(name: str) -> str:
    """A PostgreSQL server program: on PATH, else the newest of Debian's versions."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(DEBIAN_PG.glob(f"*/bin/{name}"),
                      key=lambda p: [int(n) for n in re.findall(r"\d+", p.parents[1].name)])
    if not versions:
        pytest.fail(f"PostgreSQL's {name} is neither on PATH nor in {DEBIAN_PG}/*/bin: "
                    "`make setup` installs Debian's postgresql package")
    return str(versions[-1])


@pytest.fixture(scope="module")
def pg_url(free_port):
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    d = tempfile.mkdtemp(prefix="pingjia-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run it as the postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(d, "postgres")
    data = os.path.join(d, "data")
    port = free_port()
    subprocess.run(as_user + [initdb, "-D", data, "-A", "trust", "-U", "pj", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run(as_user + [pg_ctl, "-D", data, "-l", os.path.join(d, "log"), "-w", "-t", "60",
                              "-o", f"-p {port} -k {d} -h 127.0.0.1 -F", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://pj@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def test_postgres_collector(pg_url, device_log, clock_at, roster_csv, t0):
    c = Collector(pg_url, clock_at(t0 + 600))
    assert Collector(pg_url).db.value("SELECT MAX(version) FROM schema_version") >= 1
    c.import_roster(roster_csv)
    d = device_log(c, "pg-1")
    d.add(record.BOOT, 1, time=record.REL)
    s = d.rating(4, record.REL | 30, ticket="PG-0001-LONG")
    d.send(1, s - 1)
    d.add(record.REASON, 4, 0, 1, s)
    d.add(record.CLOCK_SET, 60, 0, 0, t0 + 60)
    d.rating(1, t0 + 90, staff=2)
    d.send(s)
    assert d.send()[0] == d.seq  # replay: nothing twice
    rows = reports.ratings(c.db, 480)
    assert [(r["time"], r["staff_no"], r["ticket"], r["reason"]) for r in rows] == [
        ("2026-11-23T09:00:30+08:00", "SB0101", "PG-0001-LONG", "其他"),
        ("2026-11-23T09:01:30+08:00", "SB0102", "", "")]
    assert c.db.value("SELECT COUNT(*) FROM records") == d.seq
    [row] = reports.summary(c.db, 480, "2026-11-23", "window", t0 + 600)
    assert row["ratings"] == 2 and row["bad_rate"] == 0.5
    assert export.to_csv(rows).startswith("\ufefftime,window,device,staff_no,")
    v = c.set_setting("invite_s", 20, device="pg-1")
    assert c.settings_for("pg-1")["invite_s"] == 20 and c.settings_for("pg-1")["version"] == v

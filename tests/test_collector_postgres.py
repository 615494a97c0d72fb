"""The same collector on PostgreSQL: a throwaway server on 127.0.0.1 in a temp dir
(Debian's postgresql package; skipped where initdb is missing)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile

import pytest
from test_collector_ingest import Dev
from test_sync_helpers import ROSTER, T0, Clock

from firmware import record as R
from host_tools.collector import export, reports
from host_tools.collector.store import Collector


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(os.listdir("/usr/lib/postgresql"), reverse=True) if os.path.isdir(
            "/usr/lib/postgresql") else []:
        p = f"/usr/lib/postgresql/{d}/bin/{name}"
        if os.path.exists(p):
            return p
    return None


@pytest.fixture(scope="module")
def pg_url():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    d = tempfile.mkdtemp(prefix="pingjia-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run it as the postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(d, "postgres")
    data = os.path.join(d, "data")
    port = _free_port()
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


def test_postgres_collector(pg_url):
    c = Collector(pg_url, Clock(T0 + 600))
    assert Collector(pg_url).db.value("SELECT MAX(version) FROM schema_version") >= 1
    c.import_roster(ROSTER)
    d = Dev(c, "pg-1")
    d.add(R.BOOT, 1, time=R.REL)
    s = d.rating(4, R.REL | 30, ticket="PG-0001-LONG")
    d.send(1, s - 1)
    d.add(R.REASON, 4, 0, 1, s)
    d.add(R.CLOCK_SET, 60, 0, 0, T0 + 60)
    d.rating(1, T0 + 90, staff=2)
    d.send(s)
    assert d.send()[0] == d.seq  # replay: nothing twice
    rows = reports.ratings(c.db, 480)
    assert [(r["time"], r["staff_no"], r["ticket"], r["reason"]) for r in rows] == [
        ("2026-11-23T09:00:30+08:00", "SB0101", "PG-0001-LONG", "其他"),
        ("2026-11-23T09:01:30+08:00", "SB0102", "", "")]
    assert c.db.value("SELECT COUNT(*) FROM records") == d.seq
    [row] = reports.summary(c.db, 480, "2026-11-23", "window", T0 + 600)
    assert row["ratings"] == 2 and row["bad_rate"] == 0.5
    assert export.to_csv(rows).startswith("\ufefftime,window,device,staff_no,")
    v = c.set_setting("invite_s", 20, device="pg-1")
    assert c.settings_for("pg-1")["invite_s"] == 20 and c.settings_for("pg-1")["version"] == v

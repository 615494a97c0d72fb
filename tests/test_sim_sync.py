"""`pingjia sim` with its collector: `sync`, then `pingjia export --db` shows what arrived."""

import csv
import io
import socket
import subprocess
import sys
import time
import urllib.request

from conftest import EXAMPLES, MONDAY_9, ROOT

HEADER = "time,window,device,staff_no,staff_name,ticket,level,level_name,reason"


def export(db) -> list[dict]:
    p = subprocess.run([sys.executable, "-m", "host_tools.cli", "export", "--db", str(db),
                        "--format", "csv"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    text = p.stdout.removeprefix("\ufeff")  # the BOM that makes Excel read UTF-8
    assert text.splitlines()[0] == HEADER
    return list(csv.DictReader(io.StringIO(text)))


def test_sync_then_export(sim, tmp_path):
    r = sim((EXAMPLES / "morning.txt").read_text().replace("log\nquit", "sync\nstatus\nquit"))
    sync = [a for c, a in zip(r.commands, r.answers, strict=True) if c == "sync"][0]
    assert sync[0].startswith("ok: sent"), sync
    assert r.statuses()[-1]["unsynced"] == 0
    rows = export(tmp_path / "pingjia.db")
    assert [(x["level"], x["staff_no"], x["ticket"], x["reason"]) for x in rows] == [
        ("2", "SB0101", "20261123-0001", ""),
        ("4", "SB0101", "20261123-0002", "等候时间长"),
        ("1", "SB0102", "20261123-0004", "")]
    assert rows[0]["time"] == "2026-11-23T09:00:00+08:00"
    assert rows[1]["level_name"] == "不满意" and rows[0]["window"] == "B01"


def test_power_cut_before_sync_gets_real_times_and_nothing_twice(sim, tmp_path):
    r = sim("badge 0A1B2C3D\ninvite A\nkey 1\nsync\npower off\nsleep 600\npower on\n"
            "invite B\nkey 3\nsleep 5\nsync\nsync\nlog")
    rows = export(tmp_path / "pingjia.db")
    assert [(x["ticket"], x["time"]) for x in rows] == [
        ("A", "2026-11-23T09:00:00+08:00"), ("B", "2026-11-23T09:10:00+08:00")]
    # the device learnt the time from the sync and fixed its own boot-relative records too
    assert [x["time"] for x in r.ratings()] == [rows[0]["time"], rows[1]["time"]]
    # a second run with a new flash goes on from the collector's last seq
    r2 = sim("badge 0A1B2C3D\ninvite C\nkey 2\nsync\nstatus", start="2026-11-23T10:00:00+08:00")
    assert r2.statuses()[0]["seq"] > r.log()[-1]["seq"]
    assert [x["ticket"] for x in export(tmp_path / "pingjia.db")] == ["A", "B", "C"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sim_against_a_running_pingjia_serve(tmp_path):
    db = tmp_path / "hall.db"
    port = _free_port()
    srv = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "serve", "--db", str(db),
                            "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        p = subprocess.run(
            [sys.executable, "-m", "host_tools.cli", "sim", "--script", "--db", str(db),
             "--collector", url, "--device", "b02-1", "--window", "B02", "--roster",
             str(EXAMPLES / "staff.csv"), "--start", MONDAY_9, "--sign", "text"],
            input="badge 12131415\ninvite T-1\nkey 4\nkey 2\nsync\nquit\n",
            capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "ok: sent" in p.stdout, p.stdout
        rows = export(db)
        assert [(x["device"], x["staff_no"], x["level"], x["reason"]) for x in rows] == [
            ("b02-1", "SB0207", "4", "服务态度不好")]
    finally:
        srv.terminate()
        srv.wait(timeout=10)

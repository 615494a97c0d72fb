"""`pingjia sim` with its collector: `sync`, then `pingjia export --db` shows what arrived."""

import csv
import io
import json
import random

import pytest

HEADER = "time,window,device,staff_no,staff_name,ticket,level,level_name,reason"


@pytest.fixture
def sim_db(db_url) -> str:
    """The sim's collector on SQLite, then on PostgreSQL: what arrived is the point here."""
    return db_url


@pytest.fixture
def export(cli):
    """The ratings `pingjia export --db DB` writes, as dicts."""
    def rows(db) -> list[dict]:
        p = cli("export", "--db", db, "--format", "csv")
        assert p.returncode == 0, p.stderr
        text = p.stdout.removeprefix("\ufeff")  # the BOM that makes Excel read UTF-8
        assert text.splitlines()[0] == HEADER
        return list(csv.DictReader(io.StringIO(text)))
    return rows


def test_sync_then_export(sim, sim_db, examples, export):
    r = sim((examples / "morning.txt").read_text().replace("log\nquit", "sync\nstatus\nquit"))
    sync = r.answers_to("sync")[0]
    assert sync[0].startswith("ok: sent"), sync
    assert r.statuses()[-1]["unsynced"] == 0
    rows = export(sim_db)
    assert [(x["level"], x["staff_no"], x["ticket"], x["reason"]) for x in rows] == [
        ("2", "SB0101", "20261123-0001", ""),
        ("4", "SB0101", "20261123-0002", "等候时间长"),
        ("1", "SB0102", "20261123-0004", "")]
    assert rows[0]["time"] == "2026-11-23T09:00:00+08:00"
    assert rows[1]["level_name"] == "不满意" and rows[0]["window"] == "B01"


def test_power_cut_before_sync_gets_real_times_and_nothing_twice(sim, sim_db, export):
    r = sim("badge 0A1B2C3D\ninvite A\nkey 1\nsync\npower off\nsleep 600\npower on\n"
            "invite B\nkey 3\nsleep 5\nsync\nsync\nlog")
    rows = export(sim_db)
    assert [(x["ticket"], x["time"]) for x in rows] == [
        ("A", "2026-11-23T09:00:00+08:00"), ("B", "2026-11-23T09:10:00+08:00")]
    # the device learnt the time from the sync and fixed its own boot-relative records too
    assert [x["time"] for x in r.ratings()] == [rows[0]["time"], rows[1]["time"]]
    # a second run with a new flash is a new log: its seqs start again, and the collector
    # takes none of its records for one of the old log's
    r2 = sim("badge 0A1B2C3D\ninvite C\nkey 2\nsync\nstatus", start="2026-11-23T10:00:00+08:00")
    assert r2.statuses()[0]["seq"] < r.log()[-1]["seq"]
    assert [x["ticket"] for x in export(sim_db)] == ["A", "B", "C"]
    from host_tools.collector.db import Database

    db = Database(sim_db)
    assert db.value("SELECT COUNT(*) FROM logs") == 2
    db.close()


def test_sim_against_a_running_pingjia_serve(db_url, pingjia_serve, cli, roster_csv,
                                             monday_9, export):
    db = db_url
    _, port = pingjia_serve(db)
    p = cli("sim", "--script", "--db", db, "--collector", f"http://127.0.0.1:{port}",
            "--device", "b02-1", "--window", "B02", "--roster", roster_csv, "--start", monday_9,
            "--sign", "text", input="badge 12131415\ninvite T-1\nkey 4\nkey 2\nsync\nquit\n",
            timeout=120)
    assert p.returncode == 0, p.stderr
    assert "ok: sent" in p.stdout, p.stdout
    rows = export(db)
    assert [(x["device"], x["staff_no"], x["level"], x["reason"]) for x in rows] == [
        ("b02-1", "SB0207", "4", "服务态度不好")]


def test_a_relative_flash_path_is_kept_where_the_user_runs(tmp_path, pingjia_sim):
    """--flash f.img names a file in the user's directory (the device process runs in a
    directory of its own): the image stays after the run and the next run boots it."""
    first = pingjia_sim("--sign", "text", "--flash", "board.img")
    first.send("badge 0A1B2C3D", "invite", "key 1", "status")
    seq = json.loads(first.answers(4)[-1])["seq"]
    first.send("quit")
    first.end()
    assert (tmp_path / "board.img").stat().st_size > 0
    again = pingjia_sim("--sign", "text", "--flash", "board.img")
    again.send("status")
    status = json.loads(again.answers(1)[-1])
    assert status["boot"] == 2 and status["seq"] > seq, status  # the same log, booted again
    again.send("quit")
    again.end()


def test_a_flash_that_does_not_mount_is_kept_before_a_new_log_starts(tmp_path, pingjia_sim):
    """Garbled beyond what littlefs recovers (both copies of its metadata hit): the virtual
    board formats the flash, as a board's boot does, but first keeps the bytes beside it
    for `pingjia pull --image` and says so."""
    flash = tmp_path / "board.img"
    first = pingjia_sim("--sign", "text", "--flash", flash)
    first.send("badge 0A1B2C3D", "invite", "key 1", "status")
    first.answers(4)
    first.send("quit")
    first.end()
    image = bytearray(flash.read_bytes())
    rng = random.Random(3)
    for i, b in enumerate(image):  # one written byte in 50 flipped
        if b != 0xFF and rng.random() < 0.02:
            image[i] ^= 0x5A
    flash.write_bytes(image)
    again = pingjia_sim("--sign", "text", "--flash", flash)
    again.send("status")
    assert json.loads(again.answers(1)[-1])["seq"] == 2  # a new log: its boot and status
    said = again.err.next(timeout=30) or ""
    assert "holds no littlefs that mounts" in said and "board.img.unmountable" in said, said
    assert (tmp_path / "board.img.unmountable").read_bytes() == bytes(image)
    again.send("quit")
    again.end()

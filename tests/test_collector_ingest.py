"""Collector ingest, rosters, settings, reports and export, without a network."""

from __future__ import annotations

import csv
import io
import json

import pytest

from firmware import frame, record
from firmware.roster import Roster
from host_tools.collector import export, reports
from host_tools.collector.rostercsv import RosterError
from host_tools.collector.store import Collector, CollectorError


@pytest.fixture
def col(collector, clock):
    """The collector an hour into the day (every record below is in its past)."""
    clock.t += 3600
    return collector


@pytest.fixture
def snapshot(table_rows):
    return lambda c: table_rows(c, "records", "events", "clock_offsets")


def test_ingest_is_idempotent(col, device_log, snapshot, t0):
    d = device_log(col)
    d.add(record.BOOT, 1, time=t0)
    for i in range(10):
        d.rating(1 + i % 4, t0 + 60 * i)
    ack, t, _s, _r = d.send(1, 6)
    assert ack == 6 and t == t0 + 3600
    before = snapshot(col)
    assert d.send(1, 6)[0] == 6  # a replay: same ack, nothing new
    assert snapshot(col) == before
    assert d.send(4, 11)[0] == 11  # overlapping: only 7-11 are new
    assert col.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating'") == 10
    assert col.db.value("SELECT COUNT(*) FROM records") == 11


def test_forged_frames_store_nothing(col, device_log, snapshot, t0):
    d = device_log(col)
    d.rating(2, t0)
    good = d.frame()
    col.ingest(good)
    before = snapshot(col)
    for body in (good, good[:-1], good + b"\x00", good[:30] + bytes([good[30] ^ 1]) + good[31:],
                 frame.request(b"k" * 16, "dev-1", 7, 1, 1, b"".join(d.log)),
                 frame.request(d.key, "nobody", 7, 1, 1, b"".join(d.log))):
        with pytest.raises(frame.FrameError):
            col.ingest(body)
    assert snapshot(col) == before
    assert col.devices()[0]["frames"] == 1


def test_tickets_reasons_and_late_clock(col, clock, device_log, t0):
    d = device_log(col)
    d.add(record.BOOT, 1, time=record.REL | 0)  # the clock is unknown after a power cut
    s = d.rating(4, record.REL | 100, ticket="20261123-0002-LONG-TICKET")  # 4 chunks
    # the frame ends inside the ticket chunks: the rating's ticket spans frames
    d.send(1, s - 2)
    d.send(s - 1, s)
    d.add(record.REASON, 2, 0, 1, s)
    d.add(record.CLOCK_SET, 200, 0, 0, t0 + 200)  # 200 s after boot the clock became known
    d.rating(1, t0 + 300)
    d.send(s + 1)
    rows = reports.ratings(col.db, 480)
    assert [(r["time"], r["level"], r["ticket"], r["reason"]) for r in rows] == [
        ("2026-11-23T09:01:40+08:00", 4, "20261123-0002-LONG-TICKET", "服务态度不好"),
        ("2026-11-23T09:05:00+08:00", 1, "", "")]


def test_unknown_time_is_empty_and_last(col, device_log, t0):
    d = device_log(col)
    d.add(record.BOOT, 1, time=record.REL)
    d.rating(3, record.REL | 50)
    d.add(record.BOOT, 2, time=t0)
    d.rating(2, t0 + 10)
    d.send()
    out = export.to_csv(reports.ratings(col.db, 480), bom=False)
    lines = out.splitlines()
    assert lines[0] == "time,window,device,staff_no,staff_name,ticket,level,level_name,reason"
    assert lines[1].startswith("2026-11-23T09:00:10+08:00,B01,dev-1,")
    assert lines[2].startswith(",B01,dev-1,")  # boot 1 never learned its clock


def test_roster_slots_stay_put(col, tmp_path, device_log, roster_csv, t0):
    d = device_log(col)
    v1 = col.import_roster(roster_csv)["B01"]
    r1 = col.roster_for("B01")
    assert [e[1] for e in r1["staff"]] == ["SB0101", "SB0102"]
    # a new file: SB0101 leaves B01, a newcomer arrives, the order changes
    p = tmp_path / "staff2.csv"
    p.write_text("\ufeffbadge_uid,staff_no,name,department,windows\n"
                 "AABBCCDD,SB0300,王芳,社保服务,B01\n"
                 "0E0F1011,SB0102,刘洋,社保服务,B01\n"
                 "0A1B2C3D,SB0101,张伟,社保服务,B02\n", encoding="utf-8")
    v2 = col.import_roster(p)["B01"]
    r2 = col.roster_for("B01")
    assert v2 == v1 + 1 and r2["version"] == v2
    assert r2["staff"] == [["00000000", "", ""], ["0E0F1011", "SB0102", "刘洋"],
                           ["AABBCCDD", "SB0300", "王芳"]]
    assert col.import_roster(p)["B01"] == v2  # the same file again: no new version
    # a rating by slot 1 before the change still belongs to SB0101
    d.rating(2, t0, staff=1)
    d.rating(1, t0 + 1, staff=3)
    d.send()
    assert [r["staff_no"] for r in reports.ratings(col.db, 480)] == ["SB0101", "SB0300"]


@pytest.mark.parametrize("text, words", [
    ("badge_uid,staff_no,name\n0A1B2C3D,1,x\n", "missing column"),
    ("badge_uid,staff_no,name,department,windows\nZZZ,1,x,d,B01\n", "line 2"),
    ("badge_uid,staff_no,name,department,windows\n0A1B2C3D,1,x,d,B01\n"
     "0A1B2C3D,2,y,d,B01\n", "line 3"),
])
def test_bad_roster_files_store_nothing(col, tmp_path, text, words, roster_csv):
    col.import_roster(roster_csv)
    before = col.db.all("SELECT * FROM staff ORDER BY 1"), col.roster_for("B01")
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(RosterError) as e:
        col.import_roster(p)
    assert words in str(e.value)
    assert (col.db.all("SELECT * FROM staff ORDER BY 1"), col.roster_for("B01")) == before


def test_settings_are_validated_and_pushed(col, device_log, roster_csv, t0):
    d = device_log(col)
    with pytest.raises(CollectorError, match="invite_s"):
        col.set_setting("invite_s", 500)
    with pytest.raises(CollectorError, match="unknown setting"):
        col.set_setting("colour", "red")
    with pytest.raises(CollectorError):
        col.set_setting("version", 3)
    v = col.set_setting("invite_s", 30)
    v2 = col.set_setting("mode", "free", device="dev-1")
    assert v2 == v + 1
    d.rating(1, t0)
    _ack, _t, s, r = d.send()
    s = json.loads(s)
    assert s["invite_s"] == 30 and s["mode"] == "free" and s["version"] == v2
    assert s["window"] == "B01"
    assert r is None  # no roster for B01 yet... until one is imported
    col.import_roster(roster_csv)
    _ack, _t, s, r = d.send(sver=v2, rver=0)
    ro = Roster(r)  # the device's own reading of the pushed roster
    assert s is None and ro.entry(1)[1] == "SB0101"
    rv = ro.version
    assert d.send(sver=v2, rver=rv)[2:] == (None, None)  # up to date: nothing pushed


def test_report_figures(col, clock, device_log, roster_csv, t0):
    d = device_log(col)
    col.import_roster(roster_csv)
    d.add(record.BOOT, 1, time=t0)
    d.add(record.STATUS, record.SERVING | record.PAUSED << 4, record.WHY_BADGE, 1, t0)
    for lvl in (1, 1, 2, 3, 4):
        d.rating(lvl, t0 + 600)
    d.add(record.NO_RATING, 0, 0, 1, t0 + 700)
    d.rating(2, t0 + 3700, mode=1)  # free mode: no invitation
    d.add(record.STATUS, record.WAIT | record.SERVING << 4, record.WHY_KEY, 1, t0 + 1000)
    d.add(record.STATUS, record.SERVING | record.WAIT << 4, record.WHY_KEY, 1, t0 + 1300)
    d.add(record.STATUS, record.PAUSED | record.SERVING << 4, record.WHY_KEY, 1, t0 + 2000)
    d.add(record.STATUS, record.SERVING | record.PAUSED << 4, record.WHY_KEY, 1, t0 + 2600)
    d.add(record.STRAY, 3, 0, 1, t0)
    d.send()
    [row] = reports.summary(col.db, 480, "2026-11-23", "staff", int(clock()))
    assert row["staff"] == "SB0101" and row["staff_name"] == "张伟"
    assert row["ratings"] == 6 and row["levels"] == {1: 2, 2: 2, 3: 1, 4: 1}
    assert row["satisfied_rate"] == pytest.approx(5 / 6)
    assert row["bad_rate"] == pytest.approx(1 / 6)
    assert row["invitations"] == 6 and row["participation_rate"] == pytest.approx(5 / 6)
    assert row["index"] == pytest.approx((100 * 2 + 66.7 * 2 + 33.3) / 6)
    assert row["wait_s"] == 300 and row["pause_s"] == 600 and row["stray"] == 3
    assert len(row["bad"]) == 1
    hours = reports.summary(col.db, 480, "2026-11-23", "hour", int(clock()))
    assert [h["hour"] for h in hours] == ["09:00", "10:00"]
    assert reports.summary(col.db, 480, "2026-11-24", "window") == []
    assert "满意率" in reports.table(hours, "hour")


def test_export_csv_and_json(col, device_log, roster_csv, t0):
    d = device_log(col)
    col.import_roster(roster_csv)
    d.rating(4, t0 + 5, ticket="A-1")
    d.add(record.REASON, 3, 0, 1, d.seq)
    d.send()
    rows = reports.ratings(col.db, 480)
    text = export.to_csv(rows)
    got = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert got == [{"time": "2026-11-23T09:00:05+08:00", "window": "B01", "device": "dev-1",
                    "staff_no": "SB0101", "staff_name": "张伟", "ticket": "A-1", "level": "4",
                    "level_name": "不满意", "reason": "业务不熟悉/解释不清"}]
    assert json.loads(export.to_json(rows))[0]["level_name"] == "不满意"


def test_devices_and_ids(col, device_log):
    device_log(col, "dev-1")
    with pytest.raises(CollectorError, match="already"):
        col.add_device("dev-1", "B01")
    with pytest.raises(CollectorError, match="characters"):
        col.add_device("a-very-long-device-id", "B01")
    assert [x["id"] for x in col.devices()] == ["dev-1"]
    files = col.provisioning("dev-1", "http://127.0.0.1:9/api/v1/sync")
    assert files["device.json"]["id"] == "dev-1" and len(files["device.json"]["key"]) == 32
    assert files["settings.json"]["sync_url"].endswith("/api/v1/sync")


def test_migrations_are_versioned(db_url):
    p = db_url
    c = Collector(p)
    v = c.db.value("SELECT MAX(version) FROM schema_version")
    c.db.close()
    c2 = Collector(p)  # opening again migrates nothing twice
    assert c2.db.value("SELECT COUNT(*) FROM schema_version") == v

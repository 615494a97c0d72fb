"""Collector ingest, rosters, settings, reports and export, without a network."""

from __future__ import annotations

import csv
import io
import json

import pytest
from test_sync_helpers import ROSTER, T0, Clock

from firmware import frame as F
from firmware import record as R
from firmware.roster import Roster
from host_tools.collector import export, reports
from host_tools.collector.rostercsv import RosterError
from host_tools.collector.store import Collector, CollectorError


class Dev:
    """A device as the collector sees it: a log that grows, frames that carry it."""

    def __init__(self, c: Collector, dev_id: str = "dev-1", window: str = "B01"):
        self.id = dev_id
        self.key = bytes.fromhex(c.add_device(dev_id, window))
        self.c = c
        self.seq = 0
        self.log: list[bytes] = []
        self.boot = 1
        self.nonce = 0

    def add(self, kind, val=0, arg=0, staff=0, time=0) -> int:
        self.seq += 1
        self.log.append(bytes(R.pack(self.seq, kind, val, arg, staff, time)))
        return self.seq

    def rating(self, level, t, staff=1, ticket=None, mode=0) -> int:
        for ch in R.ticket_chunks(ticket) if ticket else ():
            self.seq += 1
            self.log.append(bytes(R.pack(self.seq, R.TICKET, *ch)))
        return self.add(R.RATING, level, mode, staff, t)

    def frame(self, first: int = 1, last: int | None = None, sver=0, rver=0) -> bytes:
        last = self.seq if last is None else last
        self.nonce += 1
        return F.request(self.key, self.id, self.boot, first,
                         b"".join(self.log[first - 1 : last]), sver, rver, self.nonce)

    def send(self, first: int = 1, last: int | None = None, **kw):
        body = self.frame(first, last, **kw)
        return F.parse_answer(self.c.ingest(body), F.Hmac(self.key), body[-32:])


@pytest.fixture
def clock():
    return Clock(T0 + 3600)


@pytest.fixture
def col(tmp_path, clock):
    c = Collector(str(tmp_path / "c.db"), clock)
    yield c
    c.db.close()


def snapshot(c: Collector) -> list:
    return [c.db.all(f"SELECT * FROM {t} ORDER BY 1, 2") for t in ("records", "events",
                                                                     "clock_offsets")]


def test_ingest_is_idempotent(col):
    d = Dev(col)
    d.add(R.BOOT, 1, time=T0)
    for i in range(10):
        d.rating(1 + i % 4, T0 + 60 * i)
    ack, t, _s, _r = d.send(1, 6)
    assert ack == 6 and t == T0 + 3600
    before = snapshot(col)
    assert d.send(1, 6)[0] == 6  # a replay: same ack, nothing new
    assert snapshot(col) == before
    assert d.send(4, 11)[0] == 11  # overlapping: only 7-11 are new
    assert col.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating'") == 10
    assert col.db.value("SELECT COUNT(*) FROM records") == 11


def test_forged_frames_store_nothing(col):
    d = Dev(col)
    d.rating(2, T0)
    good = d.frame()
    col.ingest(good)
    before = snapshot(col)
    for body in (good, good[:-1], good + b"\x00", good[:30] + bytes([good[30] ^ 1]) + good[31:],
                 F.request(b"k" * 16, "dev-1", 1, 1, b"".join(d.log)),
                 F.request(d.key, "nobody", 1, 1, b"".join(d.log))):
        with pytest.raises(F.FrameError):
            col.ingest(body)
    assert snapshot(col) == before
    assert col.devices()[0]["frames"] == 1


def test_tickets_reasons_and_late_clock(col, clock):
    d = Dev(col)
    d.add(R.BOOT, 1, time=R.REL | 0)  # the clock is unknown after a power cut
    s = d.rating(4, R.REL | 100, ticket="20261123-0002-LONG-TICKET")  # 4 chunks
    # the frame ends inside the ticket chunks: the rating's ticket spans frames
    d.send(1, s - 2)
    d.send(s - 1, s)
    d.add(R.REASON, 2, 0, 1, s)
    d.add(R.CLOCK_SET, 200, 0, 0, T0 + 200)  # 200 s after boot the clock became known
    d.rating(1, T0 + 300)
    d.send(s + 1)
    rows = reports.ratings(col.db, 480)
    assert [(r["time"], r["level"], r["ticket"], r["reason"]) for r in rows] == [
        ("2026-11-23T09:01:40+08:00", 4, "20261123-0002-LONG-TICKET", "服务态度不好"),
        ("2026-11-23T09:05:00+08:00", 1, "", "")]


def test_unknown_time_is_empty_and_last(col):
    d = Dev(col)
    d.add(R.BOOT, 1, time=R.REL)
    d.rating(3, R.REL | 50)
    d.add(R.BOOT, 2, time=T0)
    d.rating(2, T0 + 10)
    d.send()
    out = export.to_csv(reports.ratings(col.db, 480), bom=False)
    lines = out.splitlines()
    assert lines[0] == "time,window,device,staff_no,staff_name,ticket,level,level_name,reason"
    assert lines[1].startswith("2026-11-23T09:00:10+08:00,B01,dev-1,")
    assert lines[2].startswith(",B01,dev-1,")  # boot 1 never learned its clock


def test_roster_slots_stay_put(col, tmp_path):
    d = Dev(col)
    v1 = col.import_roster(ROSTER)["B01"]
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
    d.rating(2, T0, staff=1)
    d.rating(1, T0 + 1, staff=3)
    d.send()
    assert [r["staff_no"] for r in reports.ratings(col.db, 480)] == ["SB0101", "SB0300"]


@pytest.mark.parametrize("text, words", [
    ("badge_uid,staff_no,name\n0A1B2C3D,1,x\n", "missing column"),
    ("badge_uid,staff_no,name,department,windows\nZZZ,1,x,d,B01\n", "line 2"),
    ("badge_uid,staff_no,name,department,windows\n0A1B2C3D,1,x,d,B01\n"
     "0A1B2C3D,2,y,d,B01\n", "line 3"),
])
def test_bad_roster_files_store_nothing(col, tmp_path, text, words):
    col.import_roster(ROSTER)
    before = col.db.all("SELECT * FROM staff ORDER BY 1"), col.roster_for("B01")
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(RosterError) as e:
        col.import_roster(p)
    assert words in str(e.value)
    assert (col.db.all("SELECT * FROM staff ORDER BY 1"), col.roster_for("B01")) == before


def test_settings_are_validated_and_pushed(col):
    d = Dev(col)
    with pytest.raises(CollectorError, match="invite_s"):
        col.set_setting("invite_s", 500)
    with pytest.raises(CollectorError, match="unknown setting"):
        col.set_setting("colour", "red")
    with pytest.raises(CollectorError):
        col.set_setting("version", 3)
    v = col.set_setting("invite_s", 30)
    v2 = col.set_setting("mode", "free", device="dev-1")
    assert v2 == v + 1
    d.rating(1, T0)
    _ack, _t, s, r = d.send()
    s = json.loads(s)
    assert s["invite_s"] == 30 and s["mode"] == "free" and s["version"] == v2
    assert s["window"] == "B01"
    assert r is None  # no roster for B01 yet... until one is imported
    col.import_roster(ROSTER)
    _ack, _t, s, r = d.send(sver=v2, rver=0)
    ro = Roster(r)  # the device's own reading of the pushed roster
    assert s is None and ro.entry(1)[1] == "SB0101"
    rv = ro.version
    assert d.send(sver=v2, rver=rv)[2:] == (None, None)  # up to date: nothing pushed


def test_report_figures(col, clock):
    d = Dev(col)
    col.import_roster(ROSTER)
    d.add(R.BOOT, 1, time=T0)
    d.add(R.STATUS, R.SERVING | R.PAUSED << 4, R.WHY_BADGE, 1, T0)
    for lvl in (1, 1, 2, 3, 4):
        d.rating(lvl, T0 + 600)
    d.add(R.NO_RATING, 0, 0, 1, T0 + 700)
    d.rating(2, T0 + 3700, mode=1)  # free mode: no invitation
    d.add(R.STATUS, R.WAIT | R.SERVING << 4, R.WHY_KEY, 1, T0 + 1000)
    d.add(R.STATUS, R.SERVING | R.WAIT << 4, R.WHY_KEY, 1, T0 + 1300)
    d.add(R.STATUS, R.PAUSED | R.SERVING << 4, R.WHY_KEY, 1, T0 + 2000)
    d.add(R.STATUS, R.SERVING | R.PAUSED << 4, R.WHY_KEY, 1, T0 + 2600)
    d.add(R.STRAY, 3, 0, 1, T0)
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


def test_export_csv_and_json(col):
    d = Dev(col)
    col.import_roster(ROSTER)
    d.rating(4, T0 + 5, ticket="A-1")
    d.add(R.REASON, 3, 0, 1, d.seq)
    d.send()
    rows = reports.ratings(col.db, 480)
    text = export.to_csv(rows)
    got = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert got == [{"time": "2026-11-23T09:00:05+08:00", "window": "B01", "device": "dev-1",
                    "staff_no": "SB0101", "staff_name": "张伟", "ticket": "A-1", "level": "4",
                    "level_name": "不满意", "reason": "业务不熟悉/解释不清"}]
    assert json.loads(export.to_json(rows))[0]["level_name"] == "不满意"


def test_devices_and_ids(col):
    Dev(col, "dev-1")
    with pytest.raises(CollectorError, match="already"):
        col.add_device("dev-1", "B01")
    with pytest.raises(CollectorError, match="characters"):
        col.add_device("a-very-long-device-id", "B01")
    assert [x["id"] for x in col.devices()] == ["dev-1"]
    files = col.provisioning("dev-1", "http://127.0.0.1:9/api/v1/sync")
    assert files["device.json"]["id"] == "dev-1" and len(files["device.json"]["key"]) == 32
    assert files["settings.json"]["sync_url"].endswith("/api/v1/sync")


def test_migrations_are_versioned(tmp_path):
    p = str(tmp_path / "m.db")
    c = Collector(p)
    v = c.db.value("SELECT MAX(version) FROM schema_version")
    c.db.close()
    c2 = Collector(p)  # opening again migrates nothing twice
    assert c2.db.value("SELECT COUNT(*) FROM schema_version") == v

"""Checked at the door (host_tools/collector/checks.py): every field a device with a valid
key can send out of range is refused (the frame, with the reason, nothing stored) or,
for times, stored as unknown and flagged with the reason; an old frame is refused by
the replay window; roster imports refuse control characters, long fields and rosters
too large for the device, naming the line; settings are checked before a push; the
answer is made before the commit."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import frame, record
from firmware.clock import days_from_civil
from firmware.roster import Roster
from host_tools.collector import checks
from host_tools.collector.rostercsv import RosterError
from host_tools.collector.server import SYNC_PATH
from host_tools.collector.store import Collector, CollectorError

T0 = days_from_civil(2026, 11, 23) * 86400 + 3600  # 09:00 +08:00
YEAR_2060 = days_from_civil(2060, 1, 1) * 86400
HEADER = "badge_uid,staff_no,name,department,windows\n"


class Clock:
    def __init__(self, t: int):
        self.t = t

    def __call__(self) -> int:
        return self.t


class Device:
    """A device's log as the collector sees it, and signed frames of it."""

    def __init__(self, c: Collector, dev_id: str = "chk-1", window: str = "B01"):
        self.c = c
        self.id = dev_id
        self.key = bytes.fromhex(c.add_device(dev_id, window))
        self.log: list[bytes] = []
        self.nonce = 0

    def add(self, kind, val=0, arg=0, staff=0, time=T0, seq=None) -> int:
        seq = seq if seq is not None else len(self.log) + 1
        self.log.append(bytes(record.pack(seq, kind, val, arg, staff, time)))
        return seq

    def frame(self, first: int = 1, recs: list[bytes] | None = None, nonce=None) -> bytes:
        recs = self.log[first - 1:] if recs is None else recs
        self.nonce = nonce if nonce is not None else frame.next_nonce(self.c.now(), self.nonce,
                                                                  b"\0\0\0\0")
        return frame.request(self.key, self.id, 7, 1, first, b"".join(recs), nonce=self.nonce)

    def send(self, first: int = 1, recs: list[bytes] | None = None):
        body = self.frame(first, recs)
        return frame.parse_answer(self.c.ingest_network(body), frame.Hmac(self.key), body[-32:])


@pytest.fixture
def clock():
    return Clock(T0 + 3600)


@pytest.fixture
def col(db_url, clock):
    c = Collector(db_url, clock)
    yield c
    c.db.close()


def stored(c: Collector) -> list:
    return [c.db.all(f"SELECT * FROM {t} ORDER BY 1, 2") for t in
            ("records", "events", "clock_offsets", "flags", "nonces")]


def rec(seq, kind, val=0, arg=0, staff=0, time=T0) -> bytes:
    return bytes(record.pack(seq, kind, val, arg, staff, time))


BAD_FIELDS = [  # (records after a good rating at seq 1, what the refusal names)
    ([rec(2, 0)], "kind 0"),
    ([rec(2, record.ALERT + 1)], f"kind {record.ALERT + 1}"),
    ([rec(2, record.ALERT, 0, 1)], "alert 0/1"),
    ([rec(2, record.ALERT, 1, 2)], "alert 1/2"),
    ([rec(2, record.BOOT_WHY, 0)], "boot reason 0"),
    ([rec(2, record.BOOT_WHY, len(record.BOOT_NAMES))], f"boot reason {len(record.BOOT_NAMES)}"),
    ([rec(2, 200, 1)], "kind 200"),
    ([rec(2, record.RATING, 9)], "rating level 9"),
    ([rec(2, record.RATING, 0)], "rating level 0"),
    ([rec(2, record.RATING, 2, 2)], "rating mode 2"),
    ([rec(2, record.RATING, 2, 0, 255)], "staff slot 255"),
    ([rec(2, record.NO_RATING, 3)], "no_rating 3/0"),
    ([rec(2, record.NO_RATING, 0, 7)], "no_rating 0/7"),
    ([rec(2, record.STATUS, 0 | 1 << 4, record.WHY_KEY)], "status 1->0"),
    ([rec(2, record.STATUS, 6 | 1 << 4, record.WHY_KEY)], "status 1->6"),
    ([rec(2, record.STATUS, 1 | 9 << 4, record.WHY_KEY)], "status 9->1"),
    ([rec(2, record.STATUS, 1 | 3 << 4, 9)], "why 9"),
    ([rec(2, record.FLAG, 7)], "flag 7"),
    ([rec(2, record.OVERFLOW, 6, 1, 0, T0 // 3600 * 3600)], "overflow level 6"),
    ([rec(2, record.CONFIG, 3)], "config 3"),
    ([rec(2, record.STRAY, 1, 0, 0, T0 + 5)], "start of its hour"),
    ([rec(2, record.REASON, 0, 0, 1, 1)], "reason 0"),
    ([rec(2, record.REASON, 5, 0, 1, 1)], "reason 5"),
]


@pytest.mark.parametrize("recs, words", BAD_FIELDS)
def test_out_of_range_fields_are_refused(col, recs, words):
    d = Device(col)
    d.add(record.RATING, 1, 0, 1)
    d.send()
    before = stored(col)
    body = d.frame(2, recs)
    with pytest.raises(frame.FrameError) as e:
        col.ingest_network(body)
    assert e.value.reason == "bad_field" and words in str(e.value), str(e.value)
    assert f"record seq {record.seq_of(recs[0])}" in str(e.value)
    assert stored(col) == before  # the nonce too: the device may send it again


def test_reasons_only_for_their_own_rating(col):
    d = Device(col)
    good = d.add(record.RATING, 4, 0, 1)  # a 不满意
    ok2 = d.add(record.RATING, 2, 0, 1)  # a 满意
    d.send()
    cases = [
        (rec(3, record.REASON, 1, 0, 1, ok2), "is no 不满意"),
        (rec(3, record.REASON, 1, 0, 1, 3), "not among the"),  # itself
        (rec(3, record.REASON, 1, 0, 1, 99), "not among the"),  # a later seq
        (rec(40, record.REASON, 1, 0, 1, good), "not among the 16 records"),
    ]
    for r, words in cases:
        before = stored(col)
        with pytest.raises(frame.FrameError) as e:
            col.ingest_network(d.frame(record.seq_of(r), [r]))
        assert e.value.reason == "bad_field" and words in str(e.value), str(e.value)
        assert stored(col) == before
    d.send(3, [rec(3, record.REASON, 2, 0, 1, good)])  # the right one is taken
    assert col.db.value("SELECT reason FROM events WHERE seq = ?", (good,)) == 2
    with pytest.raises(frame.FrameError, match="has a reason already"):  # no rewriting it
        col.ingest_network(d.frame(4, [rec(4, record.REASON, 3, 0, 1, good)]))
    # a reason for a 不满意 of an earlier boot (the prompt cannot outlive a power cut)
    s = d.add(record.RATING, 4, 0, 1, seq=4)
    d.send(4, [d.log[-1]])
    with pytest.raises(frame.FrameError, match="earlier boot"):
        col.ingest_network(d.frame(5, [rec(5, record.BOOT, 2), rec(6, record.REASON, 1, 0, 1, s)]))
    # within one frame: the reason follows its rating
    d.send(5, [rec(5, record.RATING, 4, 0, 1), rec(6, record.REASON, 4, 0, 1, 5)])
    assert col.db.value("SELECT reason FROM events WHERE seq = 5") == 4
    # another device's 不满意 is not this one's to give a reason for
    other = Device(col, "chk-2")
    for _ in range(6):
        other.add(record.RATING, 1, 0, 1)
    other.add(record.RATING, 4, 0, 1)  # its seq 7
    other.send()
    with pytest.raises(frame.FrameError, match="seq 7 is no 不满意"):
        col.ingest_network(d.frame(8, [rec(8, record.REASON, 1, 0, 1, 7)]))
    assert col.db.value("SELECT reason FROM events WHERE device = 'chk-2' AND seq = 7") is None


def test_seq_jumps_are_bounded(col):
    d = Device(col)
    d.add(record.RATING, 1, 0, 1)
    d.send()
    before = stored(col)
    far = 2 + checks.SEQ_JUMP_MAX
    for recs in ([rec(far, record.RATING, 1)], [rec(0xFFFFFFF0, record.RATING, 1)],
                 [rec(2, record.RATING, 1), rec(3 + checks.SEQ_JUMP_MAX, record.RATING, 1)]):
        with pytest.raises(frame.FrameError) as e:
            col.ingest_network(d.frame(record.seq_of(recs[0]), recs))
        assert e.value.reason == "seq_jump" and "seqs skipped" in str(e.value)
    assert stored(col) == before
    d.send(far - 1, [rec(far - 1, record.RATING, 1)])  # the largest jump taken


def test_times_outside_the_window_are_unknown_and_flagged(col, clock):
    d = Device(col)
    d.add(record.BOOT, 1, 0, 0, T0)
    future = d.add(record.RATING, 1, 0, 1, YEAR_2060)
    past = d.add(record.RATING, 2, 0, 1, T0 - checks.TIME_BACK_S - 10)
    fine = d.add(record.RATING, 3, 0, 1, T0)
    ahead = d.add(record.RATING, 3, 0, 1, clock.t + checks.TIME_AHEAD_S + 1)
    d.send()
    t = dict(col.db.all("SELECT seq, t FROM events WHERE kind = 'rating'"))
    assert t == {future: None, past: None, fine: T0, ahead: None}
    flags = {s: (w, text) for _d, s, w, text, _r in col.db.all("SELECT * FROM flags")}
    assert set(flags) == {future, past, ahead}
    assert flags[future][0] == "time" and "2060-01-01" in flags[future][1]
    assert "outside the window" in flags[past][1]
    # a clock set to 2060 is not believed: the boot's times stay unknown, for good
    d.add(record.BOOT, 2, 0, 0, record.REL)
    r1 = d.add(record.RATING, 1, 0, 1, record.REL | 100)
    cs = d.add(record.CLOCK_SET, 200, 0, 0, YEAR_2060)
    r2 = d.add(record.RATING, 1, 0, 1, record.REL | 300)
    d.send(ahead + 1)
    assert col.db.value("SELECT COUNT(*) FROM clock_offsets") == 0
    assert col.db.all("SELECT seq, t FROM events WHERE seq IN (?, ?) ORDER BY seq",
                      (r1, r2)) == [(r1, None), (r2, None)]
    assert col.db.value("SELECT what FROM flags WHERE seq = ?", (cs,)) == "clock"
    # a sane clock for a boot whose uptimes run past the window: those stay unknown
    d.add(record.BOOT, 3, 0, 0, record.REL)
    d.add(record.CLOCK_SET, 10, 0, 0, clock.t)
    near = d.add(record.RATING, 1, 0, 1, record.REL | 20)
    far = d.add(record.RATING, 1, 0, 1, record.REL | 10 * 86400)
    d.send(r2 + 1)
    t = dict(col.db.all("SELECT seq, t FROM events WHERE seq IN (?, ?)", (near, far)))
    assert t == {near: clock.t + 10, far: None}
    assert col.db.value("SELECT COUNT(*) FROM flags WHERE seq = ?", (far,)) == 1
    # the flags are in the API for the office, and in the device list
    assert len(col.flags()) == 5 and col.devices()[0]["flags"] == 5


def test_an_old_frame_is_refused(col, clock):
    d = Device(col)
    d.add(record.RATING, 1, 0, 1)
    first = d.frame()
    col.ingest_network(first)
    with pytest.raises(frame.FrameError) as e:  # within the window: its nonce is known
        col.ingest_network(first)
    assert e.value.reason == "replayed"
    clock.t += 3600
    d.add(record.RATING, 2, 0, 1, clock.t)
    col.ingest_network(d.frame(2))
    before = stored(col)
    clock.t += 8 * 86400  # the nonces of eight days ago are forgotten
    for _ in range(70):  # enough frames for the prune to run
        col.ingest_network(d.frame(3, []))
    assert not col.db.one("SELECT 1 FROM nonces WHERE nonce = ?", (record.seq_of(first, 22 + 5),))
    with pytest.raises(frame.FrameError) as e:
        col.ingest_network(first)
    assert e.value.reason == "stale" and "2026-11-23" in str(e.value)
    assert stored(col)[:4] == before[:4]
    # a device whose clock ran far ahead of the collector's is still taken: its nonces
    # only increase
    d2 = Device(col, "chk-3")
    d2.add(record.RATING, 1, 0, 1, clock.t)
    col.ingest_network(d2.frame(nonce=clock.t + 30 * 86400))
    # a nonce made with the clock unknown is remembered for good
    d3 = Device(col, "chk-4")
    d3.add(record.RATING, 1, 0, 1, record.REL | 5)
    untimed = d3.frame(nonce=frame.next_nonce(None, 0, b"\x01\x02\x03\x04"))
    col.ingest_network(untimed)
    clock.t += 365 * 86400
    with pytest.raises(frame.FrameError, match="replayed"):
        col.ingest_network(untimed)


def test_next_nonce():
    assert frame.next_nonce(1000, 0, b"abcd") == 1000
    assert frame.next_nonce(1000, 1000, b"abcd") == 1001  # two frames in one second
    assert frame.next_nonce(999, 1005, b"abcd") == 1006  # never back
    n = frame.next_nonce(None, 1005, b"\xff\xff\xff\xff")
    assert n & frame.NONCE_UNTIMED and n == 0xFFFFFFFF
    assert frame.next_nonce(2000, n, b"abcd") == 2000  # the clock known again


# ---- over HTTP: the reasons a person reads, and the fuzz with valid MACs -----------------
def test_refusals_over_http_say_why(served):
    c = served.collector
    key = bytes.fromhex(c.add_device("http-9", "B01"))
    body = frame.request(key, "http-9", 7, 1, 1, rec(1, record.RATING, 9, 0, 0, served.t),
                     nonce=served.t)
    s, _h, text = served.call("POST", SYNC_PATH, body)
    assert s == 422 and text.startswith(b"refused: bad_field: ") and b"rating level 9" in text
    assert c.db.value("SELECT COUNT(*) FROM records") == 0
    # the device sends the same records at every sync: the office hears of it, once
    refused = "SELECT device, win, message FROM alerts WHERE kind = 'refused'"
    [(dev, win, message)] = c.db.all(refused)
    assert (dev, win) == ("http-9", "B01") and "拒收" in message and "rating level 9" in message
    again = frame.request(key, "http-9", 7, 1, 1, rec(1, record.RATING, 9, 0, 0, served.t),
                          nonce=served.t + 1)
    assert served.call("POST", SYNC_PATH, again)[0] == 422
    assert len(c.db.all(refused)) == 1
    # a forged frame names a device it cannot prove: no alert for it
    forged = frame.request(b"k" * 32, "http-9", 7, 1, 1,
                           rec(1, record.RATING, 9, 0, 0, served.t), nonce=served.t + 2)
    assert served.call("POST", SYNC_PATH, forged)[0] == 401
    assert len(c.db.all(refused)) == 1


TIME = st.one_of(st.integers(0, 0xFFFFFFFF), st.integers(T0 - 100, T0 + 7200),
                 st.integers(0, 7200).map(lambda u: u | record.REL))
HOUR = st.integers(0, 3).map(lambda h: T0 // 3600 * 3600 + h * 3600)
B = st.integers(0, 255)
SLOT = st.integers(0, 3)
# records as the firmware writes them: (kind, val, arg, staff, time); a REASON's time is
# filled in as the seq of the record before it
VALID = st.one_of(
    st.tuples(st.just(record.RATING), st.integers(1, 4), st.integers(0, 1), SLOT, TIME),
    st.tuples(st.just(record.NO_RATING), st.just(0), st.integers(0, 1), SLOT, TIME),
    st.tuples(st.just(record.STATUS), st.tuples(st.integers(1, 5), st.integers(0, 5)).map(
        lambda p: p[0] | p[1] << 4), st.integers(0, 6), SLOT, TIME),
    st.tuples(st.sampled_from((record.STRAY, record.DROPPED)), B, B, SLOT, HOUR),
    st.tuples(st.just(record.REASON), st.integers(1, 4), st.just(0), SLOT, st.just(-1)),
    st.tuples(st.sampled_from((record.BOOT, record.CLOCK_SET, record.UNKNOWN_BADGE)), B, B, B, TIME),
    st.tuples(st.just(record.TICKET), B, B, B, st.integers(0, 0xFFFFFFFF)),
    st.tuples(st.just(record.FLAG), st.just(record.FLAG_WAIT_LONG), st.just(0), SLOT, TIME),
)
# now and then one field of one record becomes any value
MUTATION = st.one_of(st.none(), st.tuples(st.integers(0, 11), st.integers(0, 4), B))


@settings(max_examples=200, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 3), VALID), min_size=1, max_size=12), MUTATION)
def test_fuzz_valid_macs_bad_fields(served, case, mutation):
    """Frames signed with the device's real key, fields anything: refused with a reason
    and nothing stored, or stored with every field in range and every believed time
    inside the window."""
    c = served.collector
    if getattr(test_fuzz_valid_macs_bad_fields, "db", None) != c.db.url:  # once a backend
        test_fuzz_valid_macs_bad_fields.db = c.db.url  # type: ignore[attr-defined]
        test_fuzz_valid_macs_bad_fields.key = bytes.fromhex(  # type: ignore[attr-defined]
            c.add_device("fz-1", "B01"))
    key = test_fuzz_valid_macs_bad_fields.key  # type: ignore[attr-defined]
    last = int(c.db.value("SELECT last_seq FROM devices WHERE id = 'fz-1'"))
    seq = last
    recs = []
    for i, (gap, fields) in enumerate(case):
        seq += gap
        kind, val, arg, staff, t = fields
        if t == -1:  # a reason: for the record before it
            t = seq - gap
        if mutation and mutation[0] % len(case) == i:
            f = [kind, val, arg, staff, t]
            f[mutation[1]] = mutation[2] if mutation[1] < 4 else mutation[2] << 24
            kind, val, arg, staff, t = f
        recs.append(rec(seq, kind, val, arg, staff, t))
    nonce = test_fuzz_valid_macs_bad_fields.nonce = frame.next_nonce(  # type: ignore[attr-defined]
        served.t, getattr(test_fuzz_valid_macs_bad_fields, "nonce", 0), b"\0" * 4)
    body = frame.request(key, "fz-1", 7, 1, last + case[0][0], b"".join(recs), nonce=nonce)
    before = stored(c)
    s, _h, text = served.call("POST", SYNC_PATH, body)
    if s != 200:
        assert s in (409, 422) and text.startswith(b"refused: "), (s, text)
        assert stored(c) == before
    else:
        ack, _t, _s, _r = frame.parse_answer(text, frame.Hmac(key), body[-32:])
        assert ack == seq
    believe = checks.TimeWindow(served.t)
    for kind, level, reason, t in c.db.all("SELECT kind, level, reason, t FROM events "
                                           "WHERE device = 'fz-1'"):
        assert t is None or believe.lo <= t < believe.hi
        if kind == "rating":
            assert 1 <= level <= 4 and (reason is None or level == 4 and 1 <= reason <= 4)
    assert served.call("GET", "/login")[0] == 200  # still serving


# ---- what goes to the device: roster and settings ------------------------------------
def _csv(tmp_path, body: str):
    p = tmp_path / "staff.csv"
    p.write_text(HEADER + body, encoding="utf-8")
    return p


@pytest.mark.parametrize("body, words", [
    ("0A1B2C3D,SB1,张\t三,d,B01\n", "line 2: name holds the control character U+0009"),
    ('0A1B2C3D,SB1,"张\n三",d,B01\n', "line 2: name holds the control character U+000A"),
    ("0A1B2C3D,SB1,张三,d,B01\n0E0F1011,SB2,李\u202e四,d,B01\n", "line 3: name holds the "
     "control character U+202E"),
    ("0A1B2C3D,SB1,张三,d\x07,B01\n", "line 2: department holds the control character U+0007"),
    ("0A1B2C3D,SB1," + "名" * 70000 + ",d,B01\n", "line 2: name is 70000 characters, more "
     "than 16"),
    ("0A1B2C3D," + "S" * 17 + ",张三,d,B01\n", "line 2: staff_no is 17 characters"),
    ("0A1B2C3D,SB1,张三,d,B01;" + "W" * 17 + "\n", "line 2: window 'WWWWWWWWWWWWWWWWW'"),
    ("0A1B2C3D,SB1,张三,d,B01,extra\n", "line 2: more cells than the header's columns"),
])
def test_roster_import_refuses_what_the_device_cannot_take(col, tmp_path, body, words):
    before = col.db.all("SELECT * FROM staff"), col.roster_for("B01")
    with pytest.raises(RosterError) as e:
        col.import_roster(_csv(tmp_path, body))
    assert words in str(e.value), str(e.value)
    assert (col.db.all("SELECT * FROM staff"), col.roster_for("B01")) == before


def test_roster_too_large_for_the_device_names_the_line(col, tmp_path):
    many = "".join(f"{i:08X},S{i:05d},员工{i},d,B01\n" for i in range(1, 256))
    with pytest.raises(CollectorError) as e:
        col.import_roster(_csv(tmp_path, many))
    assert "line 256: S00255 would be staff number 255 of window B01" in str(e.value)
    assert col.roster_for("B01")["staff"] == []
    long = "".join(f"{i:08X},{'工' * 8}{i:08d},{'名' * 16},d,B01\n" for i in range(1, 200))
    with pytest.raises(CollectorError) as e:
        col.import_roster(_csv(tmp_path, long))
    per = len(f"{1:08X}\t{'工' * 8}{1:08d}\t{'名' * 16}\n".encode())  # bytes a staff
    assert f"line {12288 // per + 2}: window B01's roster passes 12288 bytes" in str(e.value)
    assert col.roster_for("B01")["staff"] == []
    fits = "".join(f"{i:08X},S{i:05d},员工{i},d,B01\n" for i in range(1, 255))
    col.import_roster(_csv(tmp_path, fits))  # 254 staff: what a device holds
    r = Roster(col.roster_text("B01"))
    assert r.count == 254 and r.entry(254)[1] == "S00254"


@pytest.mark.parametrize("key, value, words", [
    ("sync_url", "ftp://10.0.0.5/x", "http://HOST"),
    ("sync_url", "http://10.0.0.5:99999/api/v1/sync", "port 99999"),
    ("sync_url", "http://10.0.0.5/a b", "http://HOST"),
    ("invite_s", True, "true or false"),
    ("hours", [9] * 7, "list of texts"),
    ("holidays", ["2026-10-01"] * 65, "at most 64"),
    ("hours", ["09:00-17:00"] * 8, "at most 7"),
    ("invite_s", 500, "invite_s must be"),
])
def test_settings_are_checked_before_a_push(col, key, value, words):
    Device(col)
    v = col.settings_version()
    with pytest.raises(CollectorError) as e:
        col.set_setting(key, value)
    assert words in str(e.value), str(e.value)
    assert col.settings_version() == v and col.settings_table() == []


def test_window_and_hall_names_are_checked(col):
    for bad in ("", "B\t1", "x" * 17, " B1"):
        with pytest.raises(CollectorError, match="printable"):
            col.add_device("w-1", bad)
    with pytest.raises(CollectorError, match="hall"):
        col.add_device("w-1", "B01", hall="a\nb")
    assert col.devices() == []


def test_the_answer_is_made_before_the_commit(col):
    """A roster that slipped past the import (written straight into the database) and
    cannot fit an answer: the frame is refused whole, nothing of it stored, rather than
    stored and never acked."""
    d = Device(col)
    col.import_roster_bytes((HEADER + "0A1B2C3D,SB1,张三,d,B01\n").encode())
    col.db.execute("UPDATE staff SET name = ? WHERE staff_no = 'SB1'", ("名" * 30000,))
    col.db.execute("UPDATE rosters SET version = version + 1")
    d.add(record.RATING, 1, 0, 1)
    before = stored(col)
    with pytest.raises(CollectorError, match="does not fit"):
        col.ingest_network(d.frame())
    assert stored(col) == before
    col.db.execute("UPDATE staff SET name = '张三'")
    assert d.send()[0] == 1  # fixed: the same records go in, acked


def test_settings_in_an_answer_are_what_the_device_takes(col):
    d = Device(col)
    col.set_setting("sync_url", "http://10.0.0.5:8080/api/v1/sync")
    d.add(record.RATING, 1, 0, 1)
    _ack, _t, s, _r = d.send()
    got = json.loads(s)
    assert got["sync_url"] == "http://10.0.0.5:8080/api/v1/sync" and got["window"] == "B01"

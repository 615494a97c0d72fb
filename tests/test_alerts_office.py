"""The office's alerts (issue 14, host_tools/collector/alerts.py): each kind raised by the
data that should raise it and not by data that should not, raised once across scans,
collectors and processes, closed by an admin only, thresholds per hall checked. (The
device's own ALERT records as they come and go: tests/test_alerts.py.)"""

from __future__ import annotations

import threading

import pytest
from conftest import run_migration

from firmware import frame, record
from host_tools.collector import alerts
from host_tools.collector.db import StorageUnavailable
from host_tools.collector.store import Collector, CollectorError

MIN = 60
HOUR = 3600
DAY = 86400


def kinds(c: Collector, state: str = "all") -> list[str]:
    return [a["kind"] for a in reversed(alerts.list_alerts(c, state=state)["alerts"])]


def scan(c: Collector) -> list[int]:
    return alerts.scan_new(c) + alerts.scan_time(c)


def test_a_dissatisfied_rating_raises_one_alert_however_often_it_is_scanned(
        office, clock, device_log, t0):
    d = device_log(office)
    d.add(record.BOOT, 1, time=t0)
    d.rating(1, t0 + 60)
    d.rating(4, t0 + 120)
    d.send()
    clock.t = t0 + 300
    assert len(alerts.scan_new(office)) == 1
    assert alerts.scan_new(office) == [] and scan(office.again()) == []  # the cursor holds
    d.send()  # the same frame again stores nothing and raises nothing
    assert scan(office) == []
    (a,) = alerts.list_alerts(office)["alerts"]
    assert a["kind"] == "dissatisfied" and a["text"] == "B01 窗口收到一条不满意评价"
    assert (a["hall"], a["window"], a["device"], a["state"]) == ("main", "B01", "dev-1", "open")
    assert a["raised"] == "2026-11-23T09:05:00+08:00"  # the hall's zone
    d.rating(2, t0 + 400)  # a later 满意 raises nothing
    d.send()
    assert scan(office) == []


def test_what_was_stored_before_the_alerts_existed_is_not_raised(db_url, clock, device_log, t0):

    c = Collector(db_url, clock)
    d = device_log(c)
    d.rating(4, t0 + 10)
    d.send()
    # the install as it was before: no alert tables, no cursor (the migration makes them)
    # (its migration run by hand: other features' migrations may come after it)
    with c.db.transaction():
        for t in ("alerts", "alert_settings", "alert_cursor", "webhooks", "outbox"):
            c.db.execute(f"DROP TABLE {t}")
        c.db.execute("DELETE FROM meta WHERE key IN ('alert_seq', 'alert_scan', 'webhook_seq')")
    run_migration(c.db, "CREATE TABLE alerts")
    c.db.close()
    c = Collector(db_url, clock)
    try:
        assert alerts.scan_new(c) == []
        d.c = c
        d.rating(4, t0 + 20)
        d.send(first=2)
        assert len(alerts.scan_new(c)) == 1 and kinds(c) == ["dissatisfied"]
    finally:
        c.db.close()


def test_two_collectors_scanning_at_once_raise_each_alert_once(office, clock, device_log, t0):
    d = device_log(office)
    for i in range(30):
        d.rating(4 if i % 3 == 0 else 1, t0 + i * 30)
    d.send()
    clock.t = t0 + HOUR
    others = [office.again() for _ in range(3)]
    start = threading.Barrier(len(others))
    raised: list[int] = []

    def run(c: Collector) -> None:
        start.wait(timeout=30)
        for _ in range(50):  # bounded: SQLite may be busy with another's scan
            try:
                raised.extend(alerts.scan_new(c))
                return
            except StorageUnavailable:
                threading.Event().wait(0.05)

    threads = [threading.Thread(target=run, args=(c,)) for c in others]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(raised) == len(set(raised)) == 10 + 1  # ten 不满意, one 差评率
    assert sorted(kinds(office)) == ["bad_rate"] + ["dissatisfied"] * 10


def test_bad_rate_over_the_threshold_in_the_last_hour(office, clock, device_log, t0):
    d = device_log(office)
    d.rating(4, t0)
    d.rating(1, t0 + 60)  # one bad of two: under the minimum of ratings
    d.send()
    clock.t = t0 + HOUR
    alerts.scan_new(office)
    assert "bad_rate" not in kinds(office)
    clock.t = t0 + 3 * HOUR
    for i in range(8):
        d.rating(1, t0 + 2 * HOUR + i * 60)
    d.rating(4, t0 + 2 * HOUR + 600)  # 1 of 9: 11%, not over 20%
    d.send(first=3)
    alerts.scan_new(office)
    assert "bad_rate" not in kinds(office)
    d.rating(4, t0 + 2 * HOUR + 700)  # 2 of 10: 20%, not over
    d.rating(4, t0 + 2 * HOUR + 800)  # 3 of 11: 27%
    d.rating(4, t0 + 2 * HOUR + 900)  # 4 of 12, within the same hour: no second alert
    d.send(first=12)
    alerts.scan_new(office)
    bad = [a for a in alerts.list_alerts(office)["alerts"] if a["kind"] == "bad_rate"]
    assert [a["text"] for a in bad] == ["B01 窗口近一小时差评率 27%（3/11 条），超过 20%"]
    assert (bad[0]["window"], bad[0]["device"]) == ("B01", None)
    # two hours later the same streak raises again
    clock.t = t0 + 5 * HOUR
    d.rating(1, t0 + 4 * HOUR)
    for i in range(4):  # the fifth rating of the hour, 4 of them bad
        d.rating(4, t0 + 4 * HOUR + 60 + i * 60)
    d.send(first=15)
    alerts.scan_new(office)
    assert kinds(office).count("bad_rate") == 2


def test_bad_rate_thresholds_per_hall(office, clock, device_log, t0):
    east = device_log(office, "x-1", "C01")
    office.db.execute("UPDATE devices SET hall = 'east' WHERE id = 'x-1'")
    alerts.set_setting(office, "bad_rate_pct", 50, hall="main")
    alerts.set_setting(office, "bad_rate_min", 3)  # every hall without its own
    assert alerts.thresholds(office, "main")["bad_rate_pct"] == 50
    assert alerts.thresholds(office, "east")["bad_rate_pct"] == 20
    assert alerts.thresholds(office, "east")["bad_rate_min"] == 3
    d = device_log(office)  # hall main, window B01
    for dev in (d, east):
        for i, level in enumerate((1, 1, 4)):  # 33%: over east's 20%, under main's 50%
            dev.rating(level, t0 + 60 * i)
        dev.send()
    clock.t = t0 + HOUR
    alerts.scan_new(office)
    bad = [a for a in alerts.list_alerts(office)["alerts"] if a["kind"] == "bad_rate"]
    assert [(a["hall"], a["window"]) for a in bad] == [("east", "C01")]


@pytest.mark.parametrize("key, value", [("bad_rate_pct", 0), ("bad_rate_pct", 101),
                                        ("bad_rate_min", "many"), ("silent_h", True),
                                        ("pause_max_min", 1.5), ("nonsense", 3)])
def test_bad_settings_are_refused_and_change_nothing(collector, key, value):
    with pytest.raises(CollectorError):
        alerts.set_setting(collector, key, value)
    with pytest.raises(CollectorError, match="no hall"):
        alerts.set_setting(collector, "silent_h", 48, hall="nowhere")
    assert alerts.thresholds(collector, "main") == {k: v[0] for k, v in alerts.SETTINGS.items()}


def test_a_pause_left_out_too_long(office, clock, device_log, t0):
    d = device_log(office)
    d.add(record.STATUS, record.SERVING, record.WHY_BADGE, 1, t0)
    d.add(record.STATUS, record.PAUSED | record.SERVING << 4, record.WHY_KEY, 1, t0 + 60)
    d.send()
    clock.t = t0 + 60 + 29 * MIN
    assert scan(office) == []
    clock.t = t0 + 60 + 31 * MIN
    assert kinds(office.again()) == [] and len(scan(office)) == 1
    clock.t += HOUR
    assert scan(office) == [] and scan(office.again()) == []  # the same pause: once
    (a,) = alerts.list_alerts(office)["alerts"]
    assert a["text"] == "B01 窗口暂停服务已超过 30 分钟（09:01 起）"
    # serving again, then a short pause: nothing new
    d.add(record.STATUS, record.SERVING | record.PAUSED << 4, record.WHY_KEY, 1, t0 + 2 * HOUR)
    d.add(record.STATUS, record.PAUSED | record.SERVING << 4, record.WHY_KEY, 1,
          t0 + 2 * HOUR + 60)
    d.send(first=3)
    clock.t = t0 + 2 * HOUR + 10 * MIN
    assert scan(office) == []


def test_a_device_silent_for_a_day(office, clock, device_log, t0):
    d = device_log(office)  # registered now, never synced
    clock.t = t0 + 23 * HOUR
    assert scan(office) == []
    clock.t = t0 + 25 * HOUR
    assert len(scan(office)) == 1 and scan(office) == []
    assert alerts.list_alerts(office)["alerts"][0]["text"] == \
        "B01 窗口设备 dev-1 登记已超过 24 小时，从未同步"
    d.rating(1, clock.t - 60)
    d.send()  # heard from: a new silence is a new alert
    clock.t += 23 * HOUR
    assert scan(office) == []
    clock.t += 2 * HOUR
    assert len(scan(office)) == 1
    assert alerts.list_alerts(office)["alerts"][0]["text"] == \
        "B01 窗口设备 dev-1 已超过 24 小时未同步"
    office.revoke_device("dev-1")  # a revoked device is silent by choice
    clock.t += 3 * DAY
    assert scan(office) == []


def test_a_full_log_and_the_devices_own_alerts(office, clock, device_log, t0):
    d = device_log(office)
    d.add(record.BOOT, 1, time=t0)
    d.add(record.ALERT, record.ALERT_NAMES.index("reader_fault"), 1, time=t0 + 1)
    d.add(record.ALERT, record.ALERT_NAMES.index("roster_corrupt"), 1, time=t0 + 2)
    d.add(record.ALERT, record.ALERT_NAMES.index("roster_corrupt"), 0, time=t0 + 3)
    d.add(record.ALERT, record.ALERT_NAMES.index("sync_failing"), 1, time=t0 + 4)
    d.add(record.ALERT, record.ALERT_NAMES.index("sync_failing"), 0, time=t0 + 5)
    d.add(record.OVERFLOW, 2, 7, 0, t0)  # 7 满意 kept as a count: the log is full
    d.add(record.OVERFLOW, 1, 3, 0, t0 + HOUR)  # the same day: the same alert
    clock.t = t0 + 2 * HOUR
    d.send()
    scan(office)
    shown = {a["kind"]: a["text"] for a in alerts.list_alerts(office)["alerts"]}
    assert shown == {"device_alert": "B01 窗口设备 dev-1 报告：工牌读卡器故障",
                     "log_full": "B01 窗口设备 dev-1 的存储已满，评价暂以每小时计数保存，"
                                 "请尽快同步并联系技术人员"}


def _records(d, n: int, t: int) -> None:
    for i in range(n):
        d.rating(1 + i % 3, t + i)


def test_a_log_estimated_nearly_full(office, clock, device_log, t0):
    """The device sends no fill level: the collector estimates the records made since
    its last sync from its rate so far (2 000 a day here: 80% of 100 000 in 40 days)."""
    d = device_log(office)
    _records(d, 1000, t0)
    d.send()
    clock.t = t0 + DAY
    _records(d, 1000, t0 + DAY - 2000)
    d.send(first=1001)
    alerts.set_setting(office, "silent_h", 720)  # the silence alert apart
    clock.t = t0 + DAY + 39 * DAY  # 78%
    scan(office)
    assert kinds(office) == ["silent"]
    clock.t = t0 + DAY + 41 * DAY
    assert len(scan(office)) == 1 and scan(office) == []
    a = alerts.list_alerts(office)["alerts"][0]
    assert a["kind"] == "log_nearly_full"
    assert a["text"] == "B01 窗口设备 dev-1 已 41.0 天未同步，存储估计已用 82%，请尽快同步"


def test_a_log_with_less_than_a_day_of_history_is_not_estimated(office, clock, device_log, t0):
    d = device_log(office)
    _records(d, 1000, t0)
    d.send()
    alerts.set_setting(office, "silent_h", 720)
    clock.t = t0 + 29 * DAY
    assert scan(office) == []


def test_closing_keeps_the_history(office, clock, device_log, t0):
    d = device_log(office)
    d.rating(4, t0 + 10)
    d.send()
    (aid,) = alerts.scan_new(office)
    mark = office.change_mark()
    closed = alerts.close_alert(office, aid, "王芳")
    assert (closed["state"], closed["closed_by"]) == ("closed", "王芳")
    assert office.change_mark() > mark
    assert alerts.list_alerts(office)["alerts"] == []
    assert [a["id"] for a in alerts.list_alerts(office, state="closed")["alerts"]] == [aid]
    with pytest.raises(CollectorError, match="closed already"):
        alerts.close_alert(office, aid, "王芳")
    with pytest.raises(alerts.NotFound):
        alerts.close_alert(office, aid + 99, "王芳")
    with pytest.raises(CollectorError, match="state must be"):
        alerts.list_alerts(office, state="new")
    with pytest.raises(CollectorError, match="no hall"):
        alerts.list_alerts(office, hall="nowhere")


def test_the_watcher_raises_after_a_poke(office, clock, device_log, t0):
    d = device_log(office)
    got = threading.Event()
    w = alerts.Watcher(office, every_s=3600, on_raise=lambda ids: got.set()).start()
    try:
        d.rating(4, t0 + 10)
        d.send()
        w.poke()
        assert got.wait(30)
    finally:
        w.stop()
    assert not w.thread.is_alive()
    assert kinds(office) == ["dissatisfied"]


# ---- over HTTP ----------------------------------------------------------------------------
@pytest.fixture
def api(office, office_api):
    return office_api(office)


def test_the_api_lists_and_an_admin_closes(api, clock, device_log, t0):
    d = device_log(api.c)
    d.rating(4, t0 + 10)
    d.send()
    (aid,) = alerts.scan_new(api.c)
    s, got = api.call("GET", "/api/v1/alerts?hall=main&state=open", "viewer")
    assert s == 200 and [a["id"] for a in got["alerts"]] == [aid]
    assert set(got["alerts"][0]) >= {"id", "kind", "hall", "window", "device", "text",
                                     "raised", "state"}
    # a viewer may not close: 403, still open
    s, text = api.call("POST", f"/api/v1/alerts/{aid}/close", "viewer")
    assert s == 403 and "may not" in text
    assert api.call("GET", "/api/v1/alerts", "viewer")[1]["alerts"][0]["state"] == "open"
    assert api.call("POST", f"/api/v1/alerts/{aid}/close", None)[0] == 401
    s, got = api.call("POST", f"/api/v1/alerts/{aid}/close", "admin")
    assert s == 200 and (got["state"], got["closed_by"]) == ("closed", "admin-1")
    assert api.call("GET", "/api/v1/alerts", "viewer")[1]["alerts"] == []
    s, got = api.call("GET", "/api/v1/alerts?state=all", "viewer")
    assert [a["state"] for a in got["alerts"]] == ["closed"]
    # bad input: a clear line, nothing changed
    for path, status in (("/api/v1/alerts?state=new", 400), ("/api/v1/alerts?hall=nowhere", 400),
                         ("/api/v1/alerts?limit=0", 400)):
        s, got = api.call("GET", path, "viewer")
        assert s == status and got["error"], path
    assert api.call("POST", f"/api/v1/alerts/{aid}/close", "admin")[0] == 400  # closed already
    assert api.call("POST", "/api/v1/alerts/999/close", "admin")[0] == 404
    assert api.call("POST", "/api/v1/alerts/x/close", "admin")[0] == 400


def test_the_api_sets_thresholds_for_admins_only(api):
    s, got = api.call("POST", "/api/v1/alerts/settings", "viewer",
                      {"hall": "main", "key": "silent_h", "value": 48})
    assert s == 403
    s, got = api.call("POST", "/api/v1/alerts/settings", "admin",
                      {"hall": "main", "key": "silent_h", "value": 0})
    assert s == 400 and "from 1 to 720" in got["error"]
    s, got = api.call("POST", "/api/v1/alerts/settings", "admin",
                      {"hall": "nowhere", "key": "silent_h", "value": 48})
    assert s == 400 and "no hall" in got["error"]
    assert api.call("GET", "/api/v1/alerts/settings?hall=main", "viewer")[1]["settings"][
        "silent_h"] == 24
    s, got = api.call("POST", "/api/v1/alerts/settings", "admin",
                      {"hall": "main", "key": "silent_h", "value": 48})
    assert s == 200 and got["settings"]["silent_h"] == 48
    assert api.call("GET", "/api/v1/alerts/settings", "viewer")[1]["settings"]["silent_h"] == 48


def test_the_cli(cli, tmp_path, clock_at, device_log, t0):
    db = str(tmp_path / "cli.db")
    c = Collector(db, clock_at(t0))
    d = device_log(c)
    d.rating(4, t0 + 10)
    d.send()
    c.db.close()
    r = cli("alert", "scan", "--db", db)  # on the system clock: maybe a silence too
    assert r.returncode == 0 and "alerts raised" in r.stdout, r.stderr
    r = cli("alert", "list", "--db", db)
    (line,) = [x for x in r.stdout.splitlines() if "B01 窗口收到一条不满意评价" in x]
    aid = line.split()[0]
    assert cli("alert", "close", aid, "--db", db, "--by", "王芳").returncode == 0
    r = cli("alert", "close", aid, "--db", db)
    assert r.returncode == 2 and "closed already" in r.stderr and "Traceback" not in r.stderr
    assert "王芳" in cli("alert", "list", "--state", "all", "--db", db).stdout
    r = cli("alert", "set", "bad_rate_pct", "0", "--db", db)
    assert r.returncode == 2 and "from 1 to 100" in r.stderr
    assert cli("alert", "set", "bad_rate_pct", "35", "--hall", "main", "--db", db).returncode == 0
    assert "bad_rate_pct      35" in cli("alert", "settings", "--db", db).stdout
    r = cli("alert", "list", "--hall", "nowhere", "--db", db)
    assert r.returncode == 2 and "no hall" in r.stderr


def test_frames_need_the_real_protocol(office, device_log, t0):
    """The helper's frames are the device's (firmware/frame.py), checked at the door."""
    d = device_log(office)
    d.rating(4, t0)
    body = bytearray(d.frame())
    body[-1] ^= 1
    with pytest.raises(frame.FrameError):
        office.ingest(bytes(body))
    assert alerts.scan_new(office) == []

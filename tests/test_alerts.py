"""Alerts that come and go (design.md sections 3-5): sync_failing after a day of failed
syncs, cleared by one that works; what the device flags reaches the collector's reports."""

from __future__ import annotations

import json

import pytest

from firmware import record
from host_tools.collector import reports


@pytest.fixture
def db_url(tmp_path) -> str:
    """SQLite only here: a virtual device's day (80 s) is the point, not the backend;
    the collector's side of alerts runs on both in the other collector tests."""
    return str(tmp_path / "collector.db")


def test_sync_failing_is_raised_after_a_day_and_cleared_by_a_sync(srv, provision, boot):
    dev = boot("f.img", provision(), badge="0A1B2C3D")
    dev.rate(1)
    dev.one("net off")
    assert dev.sync().startswith("error")
    dev.one("sleep 3600")
    assert dev.sync().startswith("error")
    assert "sync_failing" not in json.loads(dev.one("status"))["alerts"]  # an hour: not yet
    dev.one("sleep 86400")
    assert dev.sync().startswith("error")
    st = json.loads(dev.one("status"))
    assert st["alerts"][-1] == "sync_failing" and "⚠" in st["sign"], st
    dev.one("net on")
    assert dev.sync().startswith("ok: sent")
    assert "sync_failing" not in json.loads(dev.one("status"))["alerts"]
    dev.quit()
    # the collector learnt it came and went
    events = srv.collector.db.all("SELECT level, mode FROM events WHERE kind = 'alert'")
    code = record.ALERT_NAMES.index("sync_failing")
    assert events == [(code, 1), (code, 0)]
    assert reports.technician(srv.collector.db, 480)[0]["alerts"] == []


def test_flags_counts_badges_and_alerts_reach_a_report(collector, clock, device_log, t0):
    clock.t += 3600
    d = device_log(collector)
    d.add(record.BOOT, 1, time=t0)
    d.add(record.ALERT, record.ALERT_NAMES.index("roster_corrupt"), 1, time=t0)
    d.add(record.ALERT, record.ALERT_NAMES.index("reader_fault"), 1, time=t0)
    d.add(record.STATUS, record.PAUSED | record.SERVING << 4, record.WHY_BADGE | record.FLAGGED,
          0, t0 + 5)
    d.add(record.FLAG, record.FLAG_WAIT_LONG, 0, 1, t0 + 900)
    d.add(record.UNKNOWN_BADGE, *record.split24(0xABCDEF), time=t0 + 10)
    d.add(record.OVERFLOW, 2, 7, 0, t0)  # 7 满意 kept as a count while the log was full
    d.add(record.ALERT, record.ALERT_NAMES.index("roster_corrupt"), 0, time=t0 + 60)
    d.send()
    (row,) = reports.technician(collector.db, 480)
    assert row["alerts"] == ["reader_fault"]  # roster_corrupt came and went
    assert (row["wait_overlong"], row["pause_no_badge"], row["full_log_counted"]) == (1, 1, 7)
    assert [b["tag"] for b in row["unknown_badges"]] == ["ABCDEF"]

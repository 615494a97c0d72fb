"""End to end: virtual devices (the real firmware with its sync link on the
MicroPython unix port) sync over real sockets with a collector on 127.0.0.1."""

from __future__ import annotations

from host_tools.collector import reports


def test_ratings_reach_the_collector(srv, provision, boot):
    dev = boot("a.img", provision())
    assert dev.one("badge 0A1B2C3D").startswith("ok")
    dev.rate(2, "20261123-0001")
    dev.rate(4, "20261123-0002")
    assert dev.one("key 1").startswith("ok")  # the reason
    out = dev.sync()
    assert out.startswith("ok: sent"), out
    st = dev.link()
    assert st["unsynced"] == 0 and st["acked"] == st["seq"]
    dev.quit()
    rows = reports.ratings(srv.collector.db, 480)
    assert [(r["level"], r["staff_no"], r["ticket"], r["reason"]) for r in rows] == [
        (2, "SB0101", "20261123-0001", ""), (4, "SB0101", "20261123-0002", "等候时间长")]
    assert rows[0]["time"].startswith("2026-11-23T09:00")


def test_auto_sync_after_a_burst(srv, provision, boot):
    dev = boot("b.img", provision(), badge="0A1B2C3D")
    assert dev.one("run 1").startswith("ok")  # the boot's records go on the timer
    base = dev.link()["ok"]
    for lvl in (1, 3, 2):
        dev.rate(lvl)
    dev.one("run 12")  # the burst is over after 5 quiet seconds: one sync
    st = dev.link()
    assert st["unsynced"] == 0 and st["ok"] == base + 1, st
    dev.quit()
    assert len(reports.ratings(srv.collector.db, 480)) == 3

"""A boot that never stops (design.md section 4): each small file missing, cut short,
garbled or in a newer format; the device boots, keeps every record, raises an alert and
takes and syncs a new rating."""

from __future__ import annotations

import json

import pytest

from host_tools.collector import reports

FILES = {  # the file on the flash, and the alert its damage raises
    "log/state": "log_damaged",
    "settings.json": "settings_corrupt",
    "roster.txt": "roster_corrupt",
    "device.json": "identity_corrupt",
}


@pytest.mark.parametrize("how", ["missing", "truncated", "garbage", "newer"])
@pytest.mark.parametrize("path", list(FILES))
def test_a_damaged_small_file_never_stops_the_boot(srv, provision, boot, mp_pass, shm_dir,
                                                   t0, path, how):
    dev = boot("d.img", provision())
    assert dev.one("badge 0A1B2C3D").startswith("ok")
    dev.rate(2)
    assert dev.sync().startswith("ok: sent")
    before = dev.link()
    dev.quit()
    mp_pass("damage.py", str(shm_dir / "d.img"), "384", path, how)

    # the clock moved on while it was off (an RTC that kept time): its nonces are newer
    dev = boot("d.img", wall=t0 + 600, badge="0A1B2C3D")
    st = json.loads(dev.one("status"))
    assert FILES[path] in st["alerts"], st
    after = dev.link()
    assert after["seq"] > before["seq"] and after["boot"] > before["boot"], (before, after)
    assert after["roster"] == before["roster"]  # the last good copy
    dev.rate(3)
    assert json.loads(dev.one("status"))["staff_no"] == "SB0101"
    out = dev.sync()
    assert out.startswith("ok: sent"), out
    assert dev.link()["unsynced"] == 0
    assert FILES[path] not in json.loads(dev.one("status"))["alerts"]  # the sync cured it
    dev.quit()
    assert [r["level"] for r in reports.ratings(srv.collector.db, 480)] == [2, 3]

"""Alerts that come and go (design.md sections 3-5): sync_failing after a day of failed
syncs, cleared by one that works; what the device flags reaches the collector's reports."""

from __future__ import annotations

import json


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

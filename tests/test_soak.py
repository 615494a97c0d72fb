"""bench/soak.py, light (`make bench` runs it whole): an hour of six windows' traffic in
ten seconds against a `pingjia serve` stopped with SIGTERM and with SIGKILL mid-traffic,
started again each time; the devices back off and send again as the firmware does, and
at the end every rating is stored once and every device acked to its last seq."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def soak():
    bench = str(ROOT / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    import soak

    return soak


def test_an_hour_with_two_restarts_loses_and_doubles_nothing(soak, db_url, tmp_path):
    r = soak.soak("test", db_url, str(tmp_path), devices=6, seconds=10)
    assert len(r.signals) == 2 and len(r.down_s) == 2, r  # both restarts happened
    assert r.ratings > 60, r  # about 30 an hour a window
    assert r.failures > 0, r  # the devices saw the server gone and sent again
    assert (r.lost, r.doubled, r.unacked) == (0, 0, 0), r

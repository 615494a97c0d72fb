"""EinkSign's refresh policy (design.md section 8) over scripted days in virtual
time, with the real driver, layout and fonts on the panel model, on the
MicroPython unix port under the 128 KB heap."""

from __future__ import annotations

from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
FULL_MS, PARTIAL_MS = 3000, 500


@pytest.fixture(scope="module", params=("2.9", "4.2"))
def basics(request, mp_json):
    """The basics scenario at one panel size: every update and the counters."""
    return mp_json("sign_day.py", request.param, str(LIB), "basics")


def test_boot_draws_once_with_a_full_refresh(basics):
    log, m = basics["log"], basics["marks"]
    assert m["boot"] == 1
    start, end, full, name = log[0]
    assert full and name == "closed"
    assert end - start >= FULL_MS


def test_nothing_while_idle(basics):
    m = basics["marks"]
    assert m["idle"] == m["boot"]  # an hour without changes: no update


def test_one_partial_update_per_change(basics):
    m, log = basics["marks"], basics["log"]
    assert m["badge"] - m["idle"] == 1
    assert log[m["badge"] - 1][2:] == [False, "serving"]


def test_quick_toggles_settle_to_the_last_state(basics):
    m, log = basics["marks"], basics["log"]
    assert m["toggle_back"] == m["badge"]  # toggled back to what is shown: nothing
    assert m["toggle_to"] - m["toggle_back"] == 1  # five toggles: one update, the last
    assert log[m["toggle_to"] - 1][3] == "paused"


def test_changes_during_a_refresh_coalesce_to_the_newest(basics):
    m, log = basics["marks"], basics["log"]
    drawn = [x[3] for x in log[m["toggle_to"]:m["during"]]]
    assert drawn == ["serving", "thanks"]  # invite and reason came and went mid-refresh


def test_at_least_two_seconds_between_updates(basics):
    log = basics["log"]
    gaps = [b[0] - a[1] for a, b in zip(log, log[1:], strict=False)]
    assert min(gaps) >= 2000
    assert basics["stats"]["min_gap"] == min(gaps)


def test_full_after_five_partials_once_180_s_have_passed(basics):
    log = basics["log"]
    last_full, partials = None, 0
    for start, _end, full, _name in log[:basics["marks"]["ratings"]]:
        if last_full is None:
            assert full
        else:
            due = partials >= 5 and start - last_full >= 180_000
            assert full == due, (start, partials, start - last_full)
        if full:
            last_full, partials = start, 0
        else:
            partials += 1
    fulls = [x for x in log[:basics["marks"]["ratings"]] if x[2]]
    assert len(fulls) >= 3  # the rule fired during the ratings


def test_one_full_refresh_a_day_when_idle(basics):
    m, log, c = basics["marks"], basics["log"], basics["counts"]
    assert m["day1"] - m["ratings"] == 1 and log[m["day1"] - 1][2]
    assert m["day2"] - m["day1"] == 1 and log[m["day2"] - 1][2]
    assert c["daily"] == 2


def test_counts_agree_and_the_panel_sleeps_after_every_update(basics):
    c, model, s = basics["counts"], basics["model"], basics["stats"]
    assert model["faults"] == []
    assert (c["full"], c["partial"]) == (model["full"], model["partial"])
    assert c["updates"] == c["full"] + c["partial"] == len(basics["log"]) == s["updates"]
    assert c["errors"] == 0
    assert s["asleep"]
    assert basics["mem_free"] > 0


def test_an_office_day_one_update_per_change(mp_json):
    d = mp_json("sign_day.py", "2.9", str(LIB), "office")
    c, s = d["counts"], d["stats"]
    # every change came more than 2 s after the last: each is drawn, once
    assert c["updates"] == d["marks"]["changes"] == c["requests"]
    assert c["partial"] > 4 * c["full"]
    assert s["min_gap"] >= 2000 and s["asleep"]
    assert d["model"]["faults"] == []

"""Duty and status, design.md section 3, on the virtual device."""

import json


def statuses(r):
    return [(x["from"], x["to"], x["why"], x["flagged"], x["staff_no"])
            for x in r.kinds("status")]


def test_badge_in_serves_out_pauses_and_every_change_is_a_record(sim):
    r = sim("status\nbadge 0A1B2C3D\nstatus\nbadge out\nstatus\nlog")
    assert [s["screen"] for s in r.statuses()] == ["paused", "serving", "paused"]
    assert r.statuses()[1]["staff_no"] == "SB0101"
    assert r.statuses()[1]["sign"] == "B01号窗口 | 服务中 | 张伟  工号 SB0101"
    assert statuses(r) == [
        ("none", "paused", "boot", True, None),
        ("paused", "serving", "badge", False, "SB0101"),
        ("serving", "paused", "badge", True, None),  # no badge in working hours: flagged
    ]


def test_unknown_badge_stays_paused_with_a_notice(sim):
    r = sim("badge DEADBEEF\nstatus\ninvite\nlog")
    assert r.of(0)[0].startswith("error: unknown badge DEADBEEF")
    st = r.statuses()[0]
    assert st["screen"] == "paused" and st["notice"] == "unknown_badge"
    assert "未登记的工牌" in st["sign"]
    assert r.of(2)[0].startswith("error: no invitation")
    assert len(r.kinds("unknown_badge")) == 1


def test_an_unknown_badge_is_logged_by_a_keyed_tag_never_its_uid(sim):
    # two badges with the same low 24 bits, and the first one again
    r = sim("badge DEADBEEF\nbadge out\nbadge 01ADBEEF\nbadge out\nbadge DEADBEEF\nlog")
    tags = [x["value"] for x in r.kinds("unknown_badge")]
    assert len(tags) == 3
    assert 0xADBEEF not in tags and 0xDEADBE not in tags  # no bits of the UID itself
    assert tags[0] == tags[2] != tags[1]  # the same badge comes back as the same tag


def test_staff_of_another_window_is_not_on_this_roster(sim):
    # 陈静 (12131415) serves B02 only
    r = sim("badge 12131415\nstatus", window="B01")
    assert r.statuses()[0]["notice"] == "unknown_badge"
    r = sim("badge 12131415\nstatus", window="B02", device="sim-b02")
    assert r.statuses()[0]["screen"] == "serving"
    assert r.statuses()[0]["staff_no"] == "SB0207"


def test_badge_swap_changes_the_staff_on_the_ratings(sim):
    r = sim("badge 0A1B2C3D\ninvite\nkey 1\nbadge out\nbadge 0E0F1011\ninvite\nkey 2\n"
            "sleep 5\nlog")
    assert [(x["level"], x["staff_no"]) for x in r.ratings()] == [(1, "SB0101"), (2, "SB0102")]


def test_badge_straight_to_another_badge(sim):
    r = sim("badge 0A1B2C3D\nbadge 0E0F1011\nstatus\nlog")
    assert r.statuses()[0]["staff_no"] == "SB0102"
    assert statuses(r)[-1][4] == "SB0102"


def test_short_press_toggles_wait_long_press_toggles_pause(sim):
    r = sim("badge 0A1B2C3D\nwait\nstatus\nwait\nstatus\npause\nstatus\npause\nstatus\nlog")
    assert [s["screen"] for s in r.statuses()] == ["wait", "serving", "paused", "serving"]
    assert r.statuses()[0]["sign"].startswith("B01号窗口 | 对不起，请稍候")
    assert r.statuses()[2]["sign"].startswith("B01号窗口 | 此窗口暂停服务")
    assert [s[2] for s in statuses(r)[2:]] == ["key"] * 4


def test_status_key_without_a_badge_does_nothing(sim):
    r = sim("wait\npause\nstatus\nlog")
    assert r.of(0)[0].startswith("error: wait ignored")
    assert r.statuses()[0]["screen"] == "paused"
    assert len(r.kinds("status")) == 1


def test_overlong_wait_is_flagged(sim):
    r = sim("badge 0A1B2C3D\nwait\nsleep 899\nlog\nsleep 2\nlog")
    assert r.log(0)[-1]["kind"] == "status"
    flags = [x for x in r.log(1) if x["kind"] == "flag"]
    assert len(flags) == 1 and flags[0]["flag"] == "wait_overlong"
    assert flags[0]["staff_no"] == "SB0101"


def test_opening_hours_closed_overtime_and_schedule(sim):
    # 17:29 Monday: serving; at 17:30 overtime (badge still in); out -> closed
    r = sim("badge 0A1B2C3D\nstatus\nsleep 60\nstatus\nbadge out\nstatus\nlog",
            start="2026-11-23T17:29:00+08:00")
    assert [s["screen"] for s in r.statuses()] == ["serving", "overtime", "closed"]
    assert r.statuses()[1]["sign"].startswith("B01号窗口 | 延时服务")
    assert [s[2] for s in statuses(r)] == ["boot", "badge", "schedule", "badge"]
    assert statuses(r)[-1][3] is False  # no badge outside hours is not flagged


def test_the_window_opens_by_itself(sim):
    r = sim("status\nsleep 1800\nstatus", start="2026-11-23T08:45:00+08:00")
    assert [s["screen"] for s in r.statuses()] == ["closed", "paused"]


def test_weekend_and_holiday_and_noon_break(sim):
    r = sim("badge 0A1B2C3D\nstatus", start="2026-11-28T10:00:00+08:00")  # Saturday
    assert r.statuses()[0]["screen"] == "overtime"
    hours = json.dumps(["09:00-12:00 13:30-17:30"] * 5 + ["", ""])
    r = sim("badge 0A1B2C3D\nstatus\nsleep 3600\nstatus\nsleep 5400\nstatus",
            start="2026-11-23T11:00:00+08:00", sets=(f"hours={hours}",))
    assert [s["screen"] for s in r.statuses()] == ["serving", "overtime", "serving"]
    r = sim("status", sets=('holidays=["2026-11-23"]',))
    assert r.statuses()[0]["screen"] == "closed"


def test_invite_in_overtime_counts(sim):
    r = sim("badge 0A1B2C3D\ninvite\nkey 1\nlog", start="2026-11-23T18:00:00+08:00")
    assert len(r.ratings()) == 1


def test_power_cut_keeps_flash_and_badge_loses_clock(sim):
    r = sim("badge 0A1B2C3D\ninvite\nkey 2\nstatus\npower off\nstatus\nsleep 60\npower on\n"
            "status\ninvite\nkey 1\nlog")
    before, off, after = r.statuses()
    assert off["screen"] == "off"
    assert after["screen"] == "serving" and after["staff_no"] == "SB0101"
    assert after["clock"] is None and "clock_unknown" in after["alerts"]
    assert after["seq"] > before["seq"]
    ratings = r.ratings()
    assert [x["level"] for x in ratings] == [2, 1]
    assert ratings[0]["time"] == "2026-11-23T09:00:00+08:00"
    assert ratings[1]["time"] is None and ratings[1]["boot"] == 2 and "uptime" in ratings[1]
    seqs = [x["seq"] for x in r.log()]
    assert seqs == sorted(set(seqs))
    assert [x["value"] for x in r.kinds("boot")] == [1, 2]


def test_clock_unknown_without_badge_is_paused(sim):
    r = sim("power off\npower on\nstatus\nclock 2026-11-23T20:00:00+08:00\nstatus\nlog")
    assert r.statuses()[0]["screen"] == "paused"
    assert r.statuses()[1]["screen"] == "closed"
    cs = r.kinds("clock_set")
    assert len(cs) == 1 and cs[0]["time"] == "2026-11-23T20:00:00+08:00"
    # records from before the clock was set get real times once the boot's offset is known
    st = [x for x in r.log() if x["kind"] == "status" and x.get("boot") == 2]
    assert st and st[0]["time"] is not None


def test_bad_commands_get_clear_errors_and_lose_nothing(sim):
    r = sim("badge 0A1B2C3D\ninvite\nkey 1\nfrobnicate\nbadge ZZZZ\nbadge 0A1B2C\nsleep -3\n"
            "sleep x\npower sideways\nstatus\nlog")
    for i in range(3, 9):
        assert r.of(i)[0].startswith("error:"), r.of(i)
    assert "unknown command" in r.of(3)[0]
    assert r.statuses()[0]["screen"] in ("thanks", "serving")
    assert len(r.ratings()) == 1


def test_status_and_log_are_json_with_the_fields_of_section_7(sim, monday_9):
    r = sim("badge 0A1B2C3D\ninvite X\nkey 4\nkey 2\nstatus\nlog", start=monday_9)
    st = r.statuses()[0]
    for k in ("screen", "staff_no", "unsynced", "seq"):
        assert k in st
    assert isinstance(st["unsynced"], int) and isinstance(st["seq"], int)
    for rec in r.log():
        assert "kind" in rec and "seq" in rec
    (rating,) = r.ratings()
    for k in ("level", "staff_no", "ticket", "reason"):
        assert k in rating
    assert (rating["level"], rating["ticket"], rating["reason"]) == (4, "X", 2)


def test_seven_byte_badge_uids_read_through_cascade_level_2(sim, tmp_path):
    roster = tmp_path / "staff.csv"
    roster.write_text("badge_uid,staff_no,name,department,windows\n"
                      "04A1B2C3D4E5F6,SB0301,王芳,综合,B01\n0A1B2C3D,SB0101,张伟,社保,B01\n")
    r = sim("badge 04A1B2C3D4E5F6\nstatus\nbadge out\nbadge 0A1B2C3D\nstatus\n"
            "badge 04A1B2C3D4E5F7\nstatus\nbadge 0102030405\n", roster=str(roster))
    assert r.statuses()[0]["staff_no"] == "SB0301"
    assert r.statuses()[1]["staff_no"] == "SB0101"
    assert r.statuses()[2]["notice"] == "unknown_badge"
    assert r.of(7)[0].startswith("error: badge UID must be 4 or 7 bytes")

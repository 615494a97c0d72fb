"""Rating rules of design.md section 2 (一事一评), on the virtual device."""

BADGE_IN = "badge 0A1B2C3D\n"
THANKS_SIGN = "B01号窗口 | 感谢您的评价"  # the text sign of window B01, the same for every key


def test_first_press_counts_and_later_presses_do_not(sim):
    r = sim(BADGE_IN + "invite T1\nkey 1\nkey 2\nkey 3\nsleep 20\nlog")
    assert [x["level"] for x in r.ratings()] == [1]
    assert r.ratings()[0]["ticket"] == "T1" and r.ratings()[0]["staff_no"] == "SB0101"
    assert "not counted" in r.of(3)[0]


def test_no_press_in_time_records_no_rating(sim):
    r = sim(BADGE_IN + "invite T2\nsleep 14.8\nstatus\nsleep 0.3\nstatus\nlog")
    assert r.statuses()[0]["screen"] == "invite"
    assert r.statuses()[1]["screen"] == "serving"
    nr = r.kinds("no_rating")
    assert len(nr) == 1 and nr[0]["ticket"] == "T2" and nr[0]["cancelled"] is False
    assert r.ratings() == []


def test_press_at_the_edges_of_the_invite_window(sim):
    # invite_s = 15: a press just inside counts, a press at 15 s does not
    r = sim(BADGE_IN + "invite A\nsleep 14.9\nkey 3\nsleep 20\n"
            "invite B\nsleep 15\nkey 3\nsleep 5\nlog")
    assert [x["ticket"] for x in r.ratings()] == ["A"]
    assert [x["ticket"] for x in r.kinds("no_rating")] == ["B"]


def test_key_without_invitation_counts_nothing_but_is_tallied(sim):
    r = sim(BADGE_IN + "key 1\nkey 4\nsleep 3600\nlog")
    assert r.ratings() == []
    stray = r.kinds("stray")
    assert len(stray) == 1 and stray[0]["count"] == 2
    assert stray[0]["hour"] == "2026-11-23T09:00:00+08:00"


def test_dissatisfied_asks_for_a_reason(sim):
    # the window's status comes back reason_s + thanks_s (10 + 3) after the rating key,
    # however soon the reason came: as after every other key
    r = sim(BADGE_IN + "invite T\nkey 4\nstatus\nkey 3\nstatus\nsleep 12.5\nstatus\nsleep 0.6\n"
            "status\nlog")
    assert [s["screen"] for s in r.statuses()] == ["reason", "thanks", "thanks", "serving"]
    (rating,) = r.ratings()
    assert rating["level"] == 4 and rating["reason"] == 3
    assert rating["reason_text"] == "业务不熟悉/解释不清"
    assert r.kinds("reason")[0]["rating_seq"] == rating["seq"]


def test_no_reason_in_time_keeps_the_rating(sim):
    r = sim(BADGE_IN + "invite\nkey 4\nsleep 10.5\nstatus\nkey 1\nsleep 5\nlog")
    assert r.statuses()[0]["screen"] == "thanks"
    (rating,) = r.ratings()
    assert rating["level"] == 4 and rating["reason"] is None
    assert r.kinds("reason") == []


def test_thanks_is_the_same_for_every_key_and_lasts_as_long_as_after_a_reason(sim):
    # reason_s + thanks_s: the status shows again as long after the key as after 不满意
    for k in (1, 2, 3):
        r = sim(BADGE_IN + f"invite\nkey {k}\nstatus\nsleep 12.8\nstatus\nsleep 0.3\nstatus")
        screens = [s["screen"] for s in r.statuses()]
        assert screens == ["thanks", "thanks", "serving"], (k, screens)
        assert r.statuses()[0]["sign"] == THANKS_SIGN


def test_rating_is_stored_before_the_thanks(sim):
    r = sim(BADGE_IN + "invite\nkey 2\nstatus")
    st = r.statuses()[0]
    assert st["screen"] == "thanks" and st["unsynced"] >= 1
    assert "counted (seq" in r.of(2)[0]


def test_invitation_only_while_serving(sim):
    r = sim("invite\n" + BADGE_IN + "wait\ninvite\nwait\npause\ninvite\npause\ninvite\nkey 1\nlog")
    assert r.of(0)[0].startswith("error: no invitation")
    assert r.of(3)[0].startswith("error: no invitation")
    assert r.of(6)[0].startswith("error: no invitation")
    assert r.of(8)[0].startswith("ok: invitation open")
    assert len(r.ratings()) == 1


def test_state_change_cancels_an_open_invitation(sim):
    r = sim(BADGE_IN + "invite T9\nbadge out\nkey 1\nlog")
    nr = r.kinds("no_rating")
    assert len(nr) == 1 and nr[0]["cancelled"] and nr[0]["ticket"] == "T9"
    assert r.ratings() == []


def test_a_new_invitation_closes_the_last(sim):
    r = sim(BADGE_IN + "invite A\ninvite B\nkey 2\nlog")
    assert [x["ticket"] for x in r.kinds("no_rating")] == ["A"]
    assert [x["ticket"] for x in r.ratings()] == ["B"]


def test_free_mode_counts_every_press_but_drops_quick_repeats(sim):
    r = sim("key 1\nkey 2\nsleep 3\nkey 3\nsleep 1\nkey 2\nsleep 2\nkey 4\nkey 1\n"
            "sleep 4000\nlog", sets=("mode=free", "min_interval_s=3"))
    levels = [x["level"] for x in r.ratings()]
    assert levels == [1, 3, 4]
    assert r.ratings()[2]["reason"] == 1  # the reason prompt takes the next key
    assert all(x["mode"] == "free" for x in r.ratings())
    assert sum(x["count"] for x in r.kinds("dropped")) == 2


def test_free_mode_refuses_staff_invitations(sim):
    r = sim("invite\n", sets=("mode=free",))
    assert r.of(0)[0].startswith("error: no invitation")


def test_nothing_tells_staff_which_key(sim):
    signs = []
    for k in (1, 2, 3):
        r = sim(BADGE_IN + f"invite\nkey {k}\nstatus")
        st = r.statuses()[0]
        signs.append((st["screen"], st["sign"]))
    assert len(set(signs)) == 1


def test_bad_key_numbers_are_refused_and_change_nothing(sim):
    r = sim(BADGE_IN + "invite\nkey 5\nkey 0\nkey x\nkey\nkey 1\nlog")
    for i in (2, 3, 4, 5):
        assert r.of(i)[0].startswith("error:"), r.of(i)
    assert [x["level"] for x in r.ratings()] == [1]

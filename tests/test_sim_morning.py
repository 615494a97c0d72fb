"""The scripted morning of examples/ on the virtual device, as design.md section 7 describes."""


def test_example_morning(sim, examples):
    r = sim((examples / "morning.txt").read_text(), sign="4.2")
    screens = [s["screen"] for s in r.statuses()]
    assert screens == ["paused", "serving", "wait", "paused"]
    ratings = r.ratings()
    assert [(x["level"], x["staff_no"], x["reason"]) for x in ratings] == [
        (2, "SB0101", None), (4, "SB0101", 1), (1, "SB0102", None)]
    assert ratings[1]["reason_text"] == "等候时间长"
    assert [x["ticket"] for x in ratings] == ["20261123-0001", "20261123-0002", "20261123-0004"]
    nr = r.kinds("no_rating")
    assert len(nr) == 1 and nr[0]["ticket"] == "20261123-0003"
    seqs = [x["seq"] for x in r.log()]
    assert seqs == sorted(set(seqs))
    assert r.of(-1) == ["ok: bye"]

"""差评 handling (host_tools/collector/cases.py): every 不满意 synced from a device opens a
case; the callback is due within the hall's days; callback, note, rectify, appeal and
the office's decision are logged with who did them; wrong transitions, a viewer's POST
and bad CLI input are refused and change nothing; the rating rows stay byte-identical."""

from __future__ import annotations

import json

import pytest
from conftest import run_migration

from firmware import record
from host_tools.collector import cases, reports
from host_tools.collector.store import Collector

DAY = 86400


@pytest.fixture
def col(db_url, clock):
    """A collector on SQLite and on PostgreSQL, an hour into the test's Monday."""
    clock.t += 3600
    c = Collector(db_url, clock)
    yield c
    c.db.close()


@pytest.fixture
def bad_day(col, device_log, t0):
    """A device that synced a morning: two good ratings and two 差评 (one with a reason
    and a ticket). Returns (device log, [case ids])."""
    d = device_log(col)
    d.add(record.BOOT, 1, time=t0)
    d.rating(1, t0 + 60)
    s1 = d.rating(4, t0 + 120, ticket="A-017")
    d.add(record.REASON, 2, 0, 1, s1)  # 服务态度不好
    d.rating(2, t0 + 180)
    s2 = d.rating(4, t0 + 240, staff=2)
    d.send()
    return d, [cases.case_id(d.id, s1), cases.case_id(d.id, s2)]


@pytest.fixture
def api(col, office_api):
    return office_api(col)


def rating_rows(c: Collector) -> list:
    return [c.db.all(f"SELECT * FROM {t} ORDER BY 1, 2") for t in ("records", "events")]


def test_a_synced_bad_rating_opens_a_case(col, bad_day, t0):
    d, (first, second) = bad_day
    page = cases.list_cases(col, reports.Filter())
    assert [k["id"] for k in page.cases] == [first, second] and page.next is None
    k = page.cases[0]
    assert (k["device"], k["log"], k["window"], k["staff_no"], k["ticket"], k["reason_text"],
            k["state"], k["state_name"], k["overdue"], k["actions"]) == (
        d.id, 0, "B01", None, "A-017", "服务态度不好", "open", "待回访", False, [])
    assert k["time"] == "2026-11-23T09:02:00+08:00"
    assert k["due"] == "2026-11-26T09:02:00+08:00"  # three days, the default
    assert cases.get_case(col, first) == k
    s = cases.summary(col.db, None, col.now())
    assert (s["open"], s["awaiting_callback"], s["overdue"], s["closed"], s["total"]) == (
        2, 2, 0, 0, 2)
    # a replayed frame makes no second case
    d.send()
    assert len(cases.list_cases(col, reports.Filter()).cases) == 2


def test_overdue_after_the_halls_days(col, clock, bad_day, t0):
    _d, (first, second) = bad_day
    clock.t = t0 + 120 + 3 * DAY  # the first one's due time
    overdue = cases.list_cases(col, reports.Filter(), "overdue").cases
    assert [k["id"] for k in overdue] == [first] and overdue[0]["overdue"]
    assert cases.summary(col.db, None, col.now())["overdue"] == 1
    mark = col.change_mark()
    cases.set_callback_days(col, 5, hall="main")  # this hall gives five days
    assert col.change_mark() > mark
    assert cases.list_cases(col, reports.Filter(), "overdue").cases == []
    assert cases.get_case(col, first)["due"] == "2026-11-28T09:02:00+08:00"
    clock.t = t0 + 240 + 5 * DAY
    assert cases.summary(col.db, None, col.now())["overdue"] == 2
    cases.act(col, first, "callback", "电话回访，群众反映等候过久", "zhang")
    assert [k["id"] for k in cases.list_cases(col, reports.Filter(), "overdue").cases] == [
        second]  # a callback ends overdue
    with pytest.raises(cases.CaseError, match="1 to 60"):
        cases.set_callback_days(col, 0)


def test_actions_logged_with_who_and_wrong_transitions_refused(col, clock, bad_day):
    _d, (first, second) = bad_day
    before = rating_rows(col)

    def refused(cid, action, words, decision=None):
        mark = col.change_mark()
        n = col.db.value("SELECT COUNT(*) FROM case_actions")
        with pytest.raises(cases.CaseError, match=words) as e:
            cases.act(col, cid, action, "x", "li", decision)
        assert col.change_mark() == mark
        assert col.db.value("SELECT COUNT(*) FROM case_actions") == n
        return e.value.status

    assert refused(first, "rectify", "callback") == 409  # not before the callback
    assert refused(first, "decide", "callback", "upheld") == 409
    assert refused(first, "appeal", "callback") == 409
    mark = col.change_mark()
    k = cases.act(col, first, "callback", "已电话回访", "zhang")
    assert col.change_mark() == mark + 1  # the dashboard is told, in the same transaction
    assert k["state"] == "called_back"
    assert refused(first, "callback", "called back already") == 409
    assert refused(first, "decide", "needs an appeal", "upheld") == 409
    clock.t += 60
    k = cases.act(col, first, "appeal", "监控显示该评价系误按，申请认定为恶意差评", "wang")
    assert k["state"] == "appealed"
    assert refused(first, "rectify", "decides the appeal") == 409
    assert refused(first, "appeal", "one appeal") == 409
    k = cases.act(col, first, "note", "已调取录像", "wang")
    k = cases.act(col, first, "decide", "经核实，申诉成立", "office", "upheld")
    assert (k["state"], k["closed"], k["malicious"]) == ("upheld", True, True)
    assert refused(first, "rectify", "closed") == 409
    assert [(a["action"], a["by"], a["decision"]) for a in k["actions"]] == [
        ("callback", "zhang", None), ("appeal", "wang", None), ("note", "wang", None),
        ("decide", "office", "upheld")]
    assert k["actions"][0]["at"] == "2026-11-23T10:00:00+08:00"
    # the other: called back, appeal turned down, then rectified
    cases.act(col, second, "callback", "回访", "zhang")
    cases.act(col, second, "appeal", "申诉", "wang")
    assert cases.act(col, second, "decide", "申诉驳回", "office", "overturned")["state"] == \
        "overturned"
    assert refused(second, "appeal", "one appeal") == 409
    k = cases.act(col, second, "rectify", "已批评教育并整改", "zhang")
    assert (k["state"], k["closed"], k["malicious"]) == ("rectified", True, False)
    # bad input: nothing changes
    for cid, action, text, by, decision, words in (
            (first, "close", "x", "li", None, "one of"),
            (first, "note", "", "li", None, "text"),
            (first, "note", "a\x00b", "li", None, "text"),
            (first, "note", "x" * 501, "li", None, "text"),
            (first, "note", "x", "", None, "by"),
            (first, "note", "x", "li", "upheld", "only with the action decide"),
            (first, "decide", "x", "li", "maybe", "upheld"),
            ("nonsense", "note", "x", "li", None, "DEVICE-LOG-SEQ"),
            ("dev-1-0-999", "note", "x", "li", None, "no case")):
        with pytest.raises(cases.CaseError, match=words):
            cases.act(col, cid, action, text, by, decision)
    assert col.db.value("SELECT COUNT(*) FROM case_actions") == 8
    assert rating_rows(col) == before  # the ratings themselves never change
    s = cases.summary(col.db, None, col.now())
    assert (s["open"], s["closed"], s["malicious"], s["total"]) == (0, 2, 1, 2)


def test_malicious_bad_ratings_leave_the_bad_rate(col, bad_day):
    _d, (first, _second) = bad_day
    cases.act(col, first, "callback", "回访", "zhang")
    cases.act(col, first, "appeal", "恶意差评", "wang")
    cases.act(col, first, "decide", "申诉成立", "office", "upheld")
    rows = reports.summary(col.db, 480, None, "window", col.now())
    assert (rows[0]["ratings"], rows[0]["levels"][4]) == (4, 2)
    cases.discount_malicious(col.db, rows, "window", 480)
    r = rows[0]
    assert (r["ratings"], r["levels"][4], r["malicious"], r["bad_rate"]) == (3, 1, 1, 1 / 3)
    assert [b["malicious"] for b in r["bad"]] == [True, False]  # still listed, marked


def test_bad_ratings_stored_before_cases_get_theirs(db_url, clock, device_log, t0):
    clock.t += 3600
    c = Collector(db_url, clock)
    d = device_log(c)
    s = d.rating(4, t0 + 10)
    d.send()
    # the database as it was before this feature: no case tables; then its migration
    # (run by hand: other features' migrations may come after it in the list)
    with c.db.transaction():
        for t in ("cases", "case_actions", "case_rules"):
            c.db.execute(f"DROP TABLE {t}")
    run_migration(c.db, "CREATE TABLE cases")
    c.db.close()
    c = Collector(db_url, clock)
    try:
        [k] = cases.list_cases(c, reports.Filter(), "open").cases
        assert k["id"] == cases.case_id(d.id, s) and k["state"] == "open"
    finally:
        c.db.close()


def test_a_rating_of_unknown_time_gets_its_time_later(col, clock, device_log, t0):
    d = device_log(col)
    d.add(record.BOOT, 1, time=record.REL)  # a power cut: the clock is unknown
    s = d.rating(4, record.REL | 100)
    d.send()
    k = cases.list_cases(col, reports.Filter()).cases[0]
    assert k["time"] is None and k["due"] == "2026-11-26T10:00:00+08:00"  # from receipt
    assert cases.list_cases(col, reports.Filter(since="2026-11-23")).cases == []
    d.add(record.CLOCK_SET, 200, 0, 0, t0 + 200)
    d.send(s + 1)
    k = cases.get_case(col, cases.case_id(d.id, s))
    assert k["time"] == "2026-11-23T09:01:40+08:00" and k["due"] == "2026-11-26T09:01:40+08:00"


def test_api_lists_pages_and_acts(api, col, device_log, t0):
    d = device_log(col)
    ids = [cases.case_id(d.id, d.rating(4, t0 + 60 * i, staff=1 + i % 2)) for i in range(5)]
    d.send()
    got, after = [], ""
    for _ in range(5):  # bounded: three pages of two
        status, page = api.call("GET", f"/api/v1/cases?limit=2&after={after}")
        assert status == 200, page
        got += [k["id"] for k in page["cases"]]
        if not page["next"]:
            break
        after = page["next"]
    assert got == ids
    status, page = api.call("GET", "/api/v1/cases?window=B01&state=open&from=2026-11-23"
                            "&to=2026-11-23")
    assert status == 200 and len(page["cases"]) == 5
    status, one = api.call("GET", f"/api/v1/cases/{ids[0]}")
    assert status == 200 and one["id"] == ids[0] and one["state"] == "open"
    status, k = api.call("POST", f"/api/v1/cases/{ids[0]}", "admin",
                         {"action": "callback", "text": "已回访"})
    assert status == 200 and k["state"] == "called_back"
    assert k["actions"] == [{"action": "callback", "action_name": "回访", "text": "已回访",
                             "decision": None, "by": "admin-1",
                             "at": "2026-11-23T10:00:00+08:00"}]
    status, page = api.call("GET", "/api/v1/cases?state=closed")
    assert status == 200 and page["cases"] == []
    for action, decision in (("appeal", None), ("decide", "upheld")):
        status, k = api.call("POST", f"/api/v1/cases/{ids[0]}", "admin",
                             {"action": action, "text": "恶意差评", "decision": decision})
        assert status == 200, k
    status, page = api.call("GET", "/api/v1/cases?state=closed")
    assert [k["id"] for k in page["cases"]] == [ids[0]] and page["cases"][0]["malicious"]
    status, rep = api.call("GET", "/api/v1/report?by=window")
    row = rep["rows"][0]  # the malicious one is out of the rates, counted apart
    assert (row["ratings"], row["levels"]["4"], row["malicious"], row["bad_rate"]) == (
        4, 4, 1, 1.0)


def test_api_refusals_change_nothing(api, col, bad_day):
    _d, (first, _second) = bad_day
    before = (rating_rows(col), col.db.all("SELECT * FROM cases ORDER BY 1, 2"),
              col.change_mark())
    status, text = api.call("POST", f"/api/v1/cases/{first}", "viewer",
                            {"action": "callback", "text": "x"})
    assert status == 403 and "role viewer may not" in text
    status, _t = api.call("POST", f"/api/v1/cases/{first}", None,
                          {"action": "callback", "text": "x"})
    assert status == 401
    for path, body, want, words in (
            (f"/api/v1/cases/{first}", {"action": "decide", "text": "x",
                                        "decision": "upheld"}, 409, "callback (回访) first"),
            (f"/api/v1/cases/{first}", {"action": "rectify", "text": "x"}, 409, "callback"),
            (f"/api/v1/cases/{first}", {"action": "close", "text": "x"}, 400, "one of"),
            (f"/api/v1/cases/{first}", {"action": "note"}, 400, "text"),
            (f"/api/v1/cases/{first}", b"[1]", 400, "JSON object"),
            (f"/api/v1/cases/{first}", b"\xff", 400, "JSON object"),
            ("/api/v1/cases/dev-1-0-999", {"action": "note", "text": "x"}, 404, "no case"),
            ("/api/v1/cases/nonsense", {"action": "note", "text": "x"}, 400, "DEVICE-LOG")):
        status, answer = api.call("POST", path, "admin", body)
        assert status == want and words in answer["error"], (path, body, status, answer)
    for query, words in (("state=pending", "state"), ("hall=nowhere", "no hall"),
                         ("window=Z99", "no window"), ("staff=NOBODY", "no staff"),
                         ("from=2026-13-01", "bad day"), ("limit=0", "limit"),
                         ("after=garbage", "after")):
        status, answer = api.call("GET", "/api/v1/cases?" + query)
        assert status == 400 and words in answer["error"], (query, status, answer)
    assert api.call("GET", "/api/v1/cases/dev-1-0-999")[0] == 404
    assert before == (rating_rows(col), col.db.all("SELECT * FROM cases ORDER BY 1, 2"),
                      col.change_mark())


def test_cli(cli, tmp_path, clock_at, device_log, t0):
    db = str(tmp_path / "cli.db")
    c = Collector(db, clock_at(t0 + 3600))
    d = device_log(c)
    s = d.rating(4, t0 + 60)
    d.rating(1, t0 + 70)
    d.send()
    c.db.close()
    cid = cases.case_id(d.id, s)
    p = cli("case", "list", "--db", db, "--state", "open")
    assert p.returncode == 0 and p.stdout.startswith(cid) and "待回访" in p.stdout, p.stderr
    p = cli("case", "callback", cid, "已电话回访", "--by", "zhang", "--db", db)
    assert p.returncode == 0 and "已回访" in p.stdout and "by zhang: 已电话回访" in p.stdout
    p = cli("case", "appeal", cid, "误按", "--by", "wang", "--db", db)
    assert p.returncode == 0, p.stderr
    p = cli("case", "decide", cid, "upheld", "申诉成立", "--by", "office", "--db", db)
    assert p.returncode == 0 and "申诉成立（恶意差评）" in p.stdout, p.stderr
    p = cli("case", "show", cid, "--json", "--db", db)
    assert [a["by"] for a in json.loads(p.stdout)["actions"]] == ["zhang", "wang", "office"]
    p = cli("report", "--db", db)
    assert p.returncode == 0 and "差评 cases: 0 open" in p.stdout and "1 malicious" in p.stdout
    assert cli("case", "days", "5", "--hall", "main", "--db", db).returncode == 0
    before = Collector(db).db.all("SELECT * FROM case_actions")
    for args in (("case", "rectify", cid, "x", "--by", "li"),  # closed
                 ("case", "note", "dev-1-0-99", "x", "--by", "li"),  # no such case
                 ("case", "note", "garbage", "x", "--by", "li"),
                 ("case", "note", cid, "x"),  # no --by
                 ("case", "decide", cid, "maybe", "x", "--by", "li"),
                 ("case", "list", "--state", "pending"),
                 ("case", "list", "--hall", "nowhere"),
                 ("case", "days", "0"),
                 ("case", "days", "5", "--hall", "nowhere")):
        p = cli(*args, "--db", db)
        assert p.returncode == 2 and p.stdout == "", (args, p.stdout, p.stderr)
        assert p.stderr.startswith("pingjia: ") and p.stderr.count("\n") == 1, (args, p.stderr)
    assert Collector(db).db.all("SELECT * FROM case_actions") == before

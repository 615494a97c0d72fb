"""The periodic evaluation (issue 14; DB34/T 3395-2019 11.3.4): periods parse to their
span in the hall's zone, windows and staff of a hall are ranked from ratings that came in
through real frames, `pingjia report --period` and /api/v1/evaluation(.pdf) refuse bad
input with one line, the PDF parses, embeds its CJK font and says what it should."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from firmware import record
from host_tools.collector import evaluation, pdf
from host_tools.errors import PingjiaError

EPOCH_2000 = 946684800
EAST = "东区"  # a second hall
# window -> the keys pressed there in November 2026 (the staff member of the same number)
KEYS = {
    "B01": [1] * 10 + [4] * 2,  # index 83.3, 满意率 83.3%
    "B06": [1] * 9 + [3] * 3,  # index 83.3 as printed, 满意率 100%: ahead of B01
    "B05": [2] * 24,  # index 66.7, 100%, 24 ratings: ahead of B02 and B04
    "B02": [2] * 12,
    "B04": [2] * 12,  # equal to B02 in all three: the same rank
    "B03": [1] * 3,  # too few to be ranked
    "C01": [1] * 10,  # the other hall
}
STAFF = {w: (f"S{i:02d}", name) for i, (w, name) in enumerate(zip(
    KEYS, ("王一", "李二", "张三", "赵四", "钱五", "孙六", "周七"), strict=True), 1)}


def at(text: str) -> int:
    """An ISO time -> the firmware's seconds since 2000 UTC."""
    return int(datetime.fromisoformat(text).timestamp()) - EPOCH_2000


@pytest.fixture
def halls(served_on, device_log, tmp_path):
    """served_on with seven windows' November: six in hall main, one in 东区; B01 also
    rated just outside November and paused and waited on 11-10."""
    s = served_on
    s.t = at("2026-12-02T10:00:00+08:00")
    c = s.collector
    roster = tmp_path / "staff.csv"
    roster.write_text("badge_uid,staff_no,name,department,windows\n" + "".join(
        f"0A0B0C{i:02X},{no},{name},综合窗口,{w}\n"
        for i, (w, (no, name)) in enumerate(STAFF.items(), 1)), encoding="utf-8")
    for i, (win, keys) in enumerate(KEYS.items(), 1):
        hall = EAST if win.startswith("C") else None
        door = SimpleNamespace(add_device=lambda d, w, h=hall: c.add_device(d, w, hall=h),
                               ingest=c.ingest)
        d = device_log(door, f"dev-{i}", win)
        start = at("2026-11-10T10:00:00+08:00")
        d.add(record.BOOT, 1, time=start - 3600)
        times = [start + 60 * n for n in range(len(keys))]
        if win == "B01":  # the first and the last second of November
            times[0], times[1] = at("2026-11-01T00:00:00+08:00"), at("2026-11-30T23:59:59+08:00")
            d.rating(1, at("2026-10-31T23:59:59+08:00"))
            d.rating(4, at("2026-12-01T00:00:00+08:00"))
            for to, frm, t in ((record.WAIT, record.SERVING, "09:30"),
                               (record.SERVING, record.WAIT, "09:40"),
                               (record.PAUSED, record.SERVING, "12:00"),
                               (record.SERVING, record.PAUSED, "12:30")):
                d.add(record.STATUS, to | frm << 4, record.WHY_KEY, 1,
                      at(f"2026-11-10T{t}:00+08:00"))
        for key, t in zip(keys, times, strict=True):
            d.rating(key, t, staff=1)
        d.send()
    c.import_roster(roster)
    return s


# ---- periods ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, first, last", [
    ("2026-11", "2026-11-01", "2026-11-30"),
    ("2026-12", "2026-12-01", "2026-12-31"),  # a month that ends the year
    ("2024-02", "2024-02-01", "2024-02-29"),  # a leap year's February
    ("2026-02", "2026-02-01", "2026-02-28"),
    ("2100-02", None, None),  # out of the years taken
    ("2026-Q1", "2026-01-01", "2026-03-31"),
    ("2026-Q4", "2026-10-01", "2026-12-31"),
    ("2026-H1", "2026-01-01", "2026-06-30"),
    ("2026-H2", "2026-07-01", "2026-12-31"),
    ("2026-B1", "2026-01-01", "2026-02-28"),
    ("2024-b1", "2024-01-01", "2024-02-29"),  # lower case, and a leap year
    ("2026-B3", "2026-05-01", "2026-06-30"),
    ("2026-B6", "2026-11-01", "2026-12-31"),
    ("2026", "2026-01-01", "2026-12-31"),
    ("2028", "2028-01-01", "2028-12-31"),
])
def test_a_period_is_its_months_in_the_halls_zone(text, first, last):
    if first is None:
        with pytest.raises(evaluation.EvaluationError, match="year"):
            evaluation.parse_period(text)
        return
    p = evaluation.parse_period(text)
    assert (p.since, p.until) == (first, last)
    start = at(f"{first}T00:00:00+08:00")
    end = at(f"{last}T00:00:00+08:00") + 86400  # [start, end): to the next midnight
    assert p.span(480) == (start, end)
    assert p.span(0) == (start + 8 * 3600, end + 8 * 3600)  # another zone, the same days


def test_the_periods_labels():
    labels = {t: evaluation.parse_period(t).label
              for t in ("2026", "2026-H2", "2026-Q4", "2026-B6", "2026-11", "2026-q1")}
    assert labels == {"2026": "2026年度", "2026-H2": "2026年下半年", "2026-Q4": "2026年第四季度",
                      "2026-B6": "2026年11-12月（双月）", "2026-11": "2026年11月",
                      "2026-q1": "2026年第一季度"}


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-Q5", "2026-Q0", "2026-H3",
                                  "2026-B7", "26-11", "2026-11-01", "2026/11", "", "Q4",
                                  "2026-11~12", "1999", " 2026-W48"])
def test_a_period_that_does_not_parse_names_the_forms(text):
    with pytest.raises(evaluation.EvaluationError) as e:
        evaluation.parse_period(text)
    assert "\n" not in str(e.value) and ("YYYY-B1..B6" in str(e.value)
                                         or "runs 1-" in str(e.value)
                                         or "must be" in str(e.value))


# ---- rankings -----------------------------------------------------------------------------
def _names(rows, by="window"):
    return [(r["rank"], r[by]) for r in rows]


def test_windows_and_staff_ranked_by_index_then_rate_then_ratings(halls):
    c = halls.collector
    ev = evaluation.evaluate(c, evaluation.parse_period("2026-11"), hall="main")
    [h] = ev["halls"]
    assert h["hall"] == "main" and ev["min_ratings"] == 10
    assert _names(h["windows"]["ranked"]) == [(1, "B06"), (2, "B01"), (3, "B05"), (4, "B02"),
                                               (4, "B04")]
    assert _names(h["windows"]["unranked"]) == [(None, "B03")]
    b01 = h["windows"]["ranked"][1]
    assert b01["ratings"] == 12 and b01["levels"] == {1: 10, 2: 0, 3: 0, 4: 2}
    assert b01["satisfied_rate"] == pytest.approx(10 / 12)
    assert b01["bad_rate"] == pytest.approx(2 / 12) and b01["bad"] == 2
    assert b01["participation_rate"] == 1.0 and b01["index"] == pytest.approx(1000 / 12)
    assert (b01["wait_s"], b01["pause_s"]) == (600, 1800)
    # both 差评 opened a case at ingest; no callback in 3 days: overdue on Dec 2
    assert (b01["cases_open"], b01["cases_overdue"], b01["malicious"]) == (2, 2, 0)
    staff = h["staff"]
    assert [(r["rank"], r["staff"], r["staff_name"]) for r in staff["ranked"]] == [
        (1, "S02", "李二"), (2, "S01", "王一"), (3, "S03", "张三"), (4, "S04", "赵四"),
        (4, "S05", "钱五")]
    assert _names(staff["unranked"], "staff") == [(None, "S06")]
    t = h["totals"]
    assert t["ratings"] == 12 + 12 + 24 + 12 + 12 + 3 and t["bad"] == 2
    assert (t["cases_open"], t["cases_overdue"]) == (2, 2)
    assert staff["ranked"][1]["cases_open"] == 2  # S01's, as B01's
    # every hall apart, the other hall's window only in its own
    every = evaluation.evaluate(c, evaluation.parse_period("2026-11"))
    assert [x["hall"] for x in every["halls"]] == ["main", EAST]
    assert _names(every["halls"][1]["windows"]["ranked"]) == [(1, "C01")]
    assert every["halls"][0] == h


def test_cases_called_back_and_appealed(halls):
    """A callback takes a case off the overdue; a 差评 found malicious on appeal is not
    held against the window (out of its ratings and rates), as in pingjia report."""
    from host_tools.collector import cases

    c = halls.collector
    p = evaluation.parse_period("2026-11")
    nov = [k for k in cases.list_cases(c, p.filter(window="B01")).cases]
    assert len(nov) == 2
    first, second = (k["id"] for k in nov)
    cases.act(c, first, "callback", "已电话回访", "admin-1")
    cases.act(c, first, "appeal", "同一人当日连续差评", "admin-1")
    cases.act(c, first, "decide", "经核实为恶意差评", "office-1", decision="upheld")
    cases.act(c, second, "callback", "已回访，群众表示理解", "admin-1")
    [h] = evaluation.evaluate(c, p, hall="main")["halls"]
    b01 = h["windows"]["ranked"][0]
    assert (b01["rank"], b01["window"]) == (1, "B01")  # 10 of 11 now: index 90.9
    assert b01["ratings"] == 11 and b01["malicious"] == 1 and b01["bad"] == 1
    assert b01["index"] == pytest.approx(1000 / 11)
    assert (b01["cases_open"], b01["cases_overdue"]) == (1, 0)  # called back, not rectified
    t = h["totals"]
    assert (t["malicious"], t["cases_open"], t["cases_overdue"]) == (1, 1, 0)
    assert h["staff"]["ranked"][0]["staff"] == "S01"


def test_the_period_bounds_and_the_minimum(halls):
    c = halls.collector
    q4 = evaluation.evaluate(c, evaluation.parse_period("2026-Q4"), hall="main",
                             min_ratings=0, groups=("window",))
    [h] = q4["halls"]
    b01 = next(r for r in h["windows"]["ranked"] if r["window"] == "B01")
    assert b01["ratings"] == 14  # the quarter takes Oct 31 and Dec 1 as well
    assert "staff" not in h and len(h["windows"]["ranked"]) == 6  # no minimum: B03 ranked
    october = evaluation.evaluate(c, evaluation.parse_period("2026-10"), hall="main")
    rows = october["halls"][0]["windows"]["unranked"]
    assert {r["window"]: r["ratings"] for r in rows} == {
        "B01": 1, "B02": 0, "B03": 0, "B04": 0, "B05": 0, "B06": 0}  # every window listed
    assert evaluation.evaluate(c, evaluation.parse_period("2027"))["halls"][0][
        "totals"]["ratings"] == 0


def test_unknown_names_are_refused(halls):
    c = halls.collector
    p = evaluation.parse_period("2026-11")
    for kw, words in (({"hall": "西区"}, "no hall '西区' (known: main, 东区"),
                      ({"window": "Z99"}, "no window 'Z99'"),
                      ({"staff": "S99"}, "no staff member 'S99'"),
                      ({"min_ratings": -1}, "0 or more")):
        with pytest.raises(evaluation.EvaluationError, match=words.replace("(", r"\(")):
            evaluation.evaluate(c, p, **kw)


# ---- the CLI ------------------------------------------------------------------------------
def test_report_period_on_the_cli(halls, cli, db_url, tmp_path):
    p = cli("report", "--db", db_url, "--period", "2026-11", "--hall", "main")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith("窗口服务评价 — 大厅 main — 2026年11月\n")
    assert "窗口排名" in out and "工作人员排名" in out and "未排名 (评价少于 10 个)" in out
    b06 = next(line for line in out.splitlines() if "B06" in line)
    assert b06.split()[:7] == ["1", "B06", "12", "100.0%", "0.0%", "100.0%", "83.3"]
    p = cli("report", "--db", db_url, "--period", "2026-11", "--by", "staff", "--json",
            "--min-ratings", "3")
    assert p.returncode == 0, p.stderr
    ev = json.loads(p.stdout)
    assert [h["hall"] for h in ev["halls"]] == ["main", EAST]
    main = ev["halls"][0]
    assert "windows" not in main and len(main["staff"]["ranked"]) == 6  # S06's 3 count now
    p = cli("report", "--db", db_url, "--period", "2026-B6", "--by", "day", "--hall", "main")
    assert p.returncode == 0, p.stderr
    assert "2026年11-12月（双月）" in p.stdout and "2026-12-01" in p.stdout
    pdf_file = tmp_path / "eval.pdf"
    p = cli("report", "--db", db_url, "--period", "2026-Q4", "--pdf", pdf_file)
    assert p.returncode == 0, p.stderr
    assert pdf_file.read_bytes().startswith(b"%PDF-")


@pytest.mark.parametrize("args, words", [
    (("--period", "2026-13"), "period '2026-13': the month must be 01-12"),
    (("--period", "2026-Q5"), "period '2026-Q5': Q runs 1-4"),
    (("--period", "2026/11"), "period '2026/11' does not parse: use YYYY (年度)"),
    (("--period", "2026-11", "--hall", "西区"), "no hall '西区'"),
    (("--period", "2026-11", "--window", "Z9"), "no window 'Z9'"),
    (("--period", "2026-11", "--from", "2026-11-01"), "--period or --day/--from/--to"),
    (("--pdf", "x.pdf"), "--pdf needs --period"),
    (("--period", "2026-11", "--by", "hour", "--pdf", "x.pdf"), "--pdf takes the ranking"),
])
def test_bad_periods_and_names_on_the_cli(halls, cli, db_url, tmp_path, args, words):
    p = cli("report", "--db", db_url, *args)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and words in p.stderr, p.stderr
    assert not (tmp_path / "x.pdf").exists()


def test_a_bad_period_opens_no_database(cli, tmp_path):
    p = cli("report", "--period", "2026-Q9", "--db", tmp_path / "none.db")
    assert p.returncode == 2 and "Q runs 1-4" in p.stderr
    assert not (tmp_path / "none.db").exists()


# ---- the API ------------------------------------------------------------------------------
def test_the_evaluation_api(halls):
    s = halls
    viewer = s.tokens["viewer"]
    status, _h, body = s.call("GET", "/api/v1/evaluation?period=2026-11&hall=main",
                              token=viewer)
    assert status == 200, body
    got = json.loads(body)
    assert _names(got["halls"][0]["windows"]["ranked"])[0] == (1, "B06")
    assert got["period"] == {"text": "2026-11", "kind": "month", "label": "2026年11月",
                             "from": "2026-11-01", "to": "2026-11-30",
                             "start": "2026-11-01T00:00:00+08:00",
                             "end": "2026-12-01T00:00:00+08:00"}
    status, _h, body = s.call("GET", "/api/v1/evaluation?min_ratings=1", token=viewer)
    assert status == 200 and json.loads(body)["period"]["text"] == "2026-12"  # this month
    for query, words in (("period=2026-Q7", "Q runs 1-4"), ("period=11-2026", "does not parse"),
                         ("period=2026-11&hall=%E8%A5%BF%E5%8C%BA", "no hall '西区'"),
                         ("period=2026-11&min_ratings=x", "whole number")):
        for path in ("/api/v1/evaluation", "/api/v1/evaluation.pdf"):
            status, _h, body = s.call("GET", f"{path}?{query}", token=viewer)
            assert status == 400 and words in json.loads(body)["error"], (path, query, body)
    for path in ("/api/v1/evaluation?period=2026-11", "/api/v1/evaluation.pdf?period=2026-11"):
        assert s.call("GET", path)[0] == 401  # anonymous
        assert s.call("GET", path, token=s.tokens["queue"])[0] == 403


def test_a_viewer_fetches_the_pdf(halls):
    s = halls
    status, headers, body = s.call("GET", "/api/v1/evaluation.pdf?period=2026-11&hall=main",
                                   token=s.tokens["viewer"])
    assert status == 200 and headers["content-type"] == ["application/pdf"]
    assert 'filename="pingjia-evaluation-2026-11.pdf"' in headers["content-disposition"][0]
    text = _pdf_text(body)
    assert "窗口服务评价 — 大厅 main — 2026年11月" in text and EAST not in text


# ---- the PDF ------------------------------------------------------------------------------
def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _fonts(data: bytes) -> dict[str, bool]:
    """Every font the pages use, by base name: whether the PDF carries its program
    (FontFile2: TrueType)."""
    from pypdf import PdfReader

    out = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        for f in page["/Resources"]["/Font"].values():
            f = f.get_object()
            for d in [f, *(x.get_object() for x in f.get("/DescendantFonts", []))]:
                desc = d.get("/FontDescriptor")
                out[str(d["/BaseFont"])] = desc is not None and "/FontFile2" in desc.get_object()
    return out


def test_the_pdf_parses_embeds_its_font_and_says_what_it_should(halls):
    from pypdf import PdfReader

    ev = evaluation.evaluate(halls.collector, evaluation.parse_period("2026-11"))
    data = pdf.render(ev)
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) >= 2  # one hall a page at least
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (842, 595)  # A4 landscape
    fonts = _fonts(data)
    # a subset of the CJK font, embedded (its name carries the subset tag, AAAAAA+), and
    # nothing left to a font the printer may not have (ReportLab's default Helvetica)
    assert fonts and all(fonts.values()), fonts
    assert all("+WenQuanYiZenHei" in name for name in fonts), fonts
    text = _pdf_text(data)
    for words in ("窗口服务评价 — 大厅 main — 2026年11月", f"窗口服务评价 — 大厅 {EAST} — 2026年11月",
                  "窗口排名", "工作人员排名", "满意率", "差评率", "参评率", "未排名",
                  "满意度指数", "李二", "第 1 页，共", *KEYS):
        assert words in text, words
    assert reader.metadata.title == "窗口服务评价 — 2026年11月"


def test_no_font_no_pdf(halls, tmp_path):
    ev = evaluation.evaluate(halls.collector, evaluation.parse_period("2026-11"))
    with pytest.raises(PingjiaError, match="the CJK font .*missing.*fonts-wqy-zenhei"):
        pdf.render(ev, Path(tmp_path / "gone.ttc"))

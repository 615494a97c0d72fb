"""The office's live dashboard (dashboard.py): its JSON view with filters, the tables as
CSV and XLSX, the live stream (server-sent events on change_mark, bounded, counted per
address), the page's CSP and its own static files, bad filters refused with a message.
Real HTTP over 127.0.0.1 on SQLite and PostgreSQL (db_url)."""

from __future__ import annotations

import http.client
import io
import json
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from openpyxl import load_workbook

from firmware import record
from host_tools.collector import alerts, cases, dashboard
from host_tools.collector.limits import Limits
from host_tools.collector.server import ServerThread
from host_tools.collector.store import Collector

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-11-23"
EVIL = "=HYPERLINK(\"http://e.vil\")"


class Dash:
    """A collector on db_url serving in a thread, its clock at 10:00 on DAY, the example
    roster, a viewer and an admin."""

    def __init__(self, db_url: str, t0: int, roster: Path, limits: Limits | None = None):
        self.t = t0 + 3600
        self.c = Collector(db_url, lambda: self.t)
        self.c.import_roster(roster)
        self.viewer = self.c.users.add("viewer-1", "viewer")
        self.srv = ServerThread(self.c, limits=limits)

    def call(self, path: str, token: str | None = "viewer", timeout: float = 10
             ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=timeout)
        try:
            h = {"Authorization": f"Bearer {self.viewer}"} if token else {}
            conn.request("GET", quote(path, safe="/?&=%:"), headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, path: str) -> dict:
        s, _h, body = self.call(path)
        assert s == 200, (s, body)
        return json.loads(body)

    def close(self) -> None:
        self.srv.stop()
        self.c.db.close()


@pytest.fixture
def dash(db_url, t0, roster_csv):
    made: list[Dash] = []

    def start(limits: Limits | None = None) -> Dash:
        d = Dash(db_url, t0, roster_csv, limits)
        made.append(d)
        return d

    yield start
    for d in made:
        d.close()


def morning(dash_, device_log, t0):
    """B01: 张伟 (slot 1) serving since 09:00, two ratings and a 差评 with its reason and a
    ticket that a spreadsheet would run; a 请稍候 left on too long; B02 never synced."""
    c = dash_.c
    d = device_log(c, "b01-1", window="B01")
    d.add(record.STATUS, record.SERVING | record.PAUSED << 4, record.WHY_BADGE, 1, t0)
    d.rating(1, t0 + 60, ticket="A-1")
    d.rating(4, t0 + 120, ticket=EVIL)
    d.add(record.REASON, 2, 0, 1, d.seq)
    d.add(record.FLAG, record.FLAG_WAIT_LONG, 0, 1, t0 + 200)
    d.send()
    c.add_device("b02-1", "B02", hall="东区")
    return d


def test_view_windows_staff_heat_bad_and_silent(dash, device_log, t0):
    s = dash()
    morning(s, device_log, t0)
    v = s.json(f"/api/v1/dashboard?day={DAY}")
    wins = {w["window"]: w for w in v["windows"]}
    assert wins["B01"]["state_zh"] == "服务中" and wins["B01"]["staff_no"] == "SB0101"
    assert wins["B01"]["staff_name"] == "张伟" and wins["B01"]["since"].startswith(DAY + "T09:00")
    assert wins["B01"]["ratings"] == 2 and wins["B01"]["satisfied_rate"] == 0.5
    assert wins["B01"]["index"] == 50.0 and wins["B02"]["ratings"] == 0
    staff = {x["staff_no"]: x for x in v["staff"]}
    assert staff["SB0101"]["ratings"] == 2 and staff["SB0101"]["wait_overlong"] == 1
    assert v["total"]["ratings"] == 2 and v["total"]["levels"]["4"] == 1
    # Monday 09:00 in the hall's zone: both ratings in row 0, column 9
    assert v["heat"]["counts"][0][9] == 2 and sum(map(sum, v["heat"]["counts"])) == 2
    assert [(b["ticket"], b["reason"]) for b in v["bad"]["rows"]] == [(EVIL, "服务态度不好")]
    assert [x["device"] for x in v["silent"]] == ["b02-1"]  # never synced
    [case] = v["cases"]["open"]["cases"]  # every 差评 opens a case (cases.py)
    assert case["ticket"] == EVIL and case["state"] == "open" and not case["overdue"]
    assert v["cases"]["summary"]["open"] == 1 and v["cases"]["overdue"] == []
    assert v["alerts"] == []  # none raised yet: alerts.py's watcher scans after syncs
    alerts.scan_new(s.c)
    v = s.json(f"/api/v1/dashboard?day={DAY}")
    assert [a["kind"] for a in v["alerts"]] == ["dissatisfied"] and v["mark"] > 0
    assert v["mark"] == s.c.change_mark()
    # the same day by its range; without dates: today (the collector's clock: DAY)
    assert s.json(f"/api/v1/dashboard?from={DAY}&to={DAY}")["total"]["ratings"] == 2
    assert s.json("/api/v1/dashboard")["filter"]["day"] == DAY
    # an hour later b01-1 is silent too at ?silent=30, not at the default 60
    s.t += 3600
    assert len(s.json("/api/v1/dashboard")["silent"]) == 1
    assert len(s.json("/api/v1/dashboard?silent=30")["silent"]) == 2
    # four days on the case is overdue: listed whatever the dates shown
    s.t += 4 * 86400
    v = s.json(f"/api/v1/dashboard?day={DAY}")
    assert [k["id"] for k in v["cases"]["overdue"]] == [case["id"]]
    assert v["cases"]["summary"]["overdue"] == 1
    assert s.json("/api/v1/dashboard")["cases"]["open"]["cases"][0]["overdue"] is True


def test_filters_and_bad_filters(dash, device_log, t0):
    s = dash()
    morning(s, device_log, t0)
    assert s.json("/api/v1/dashboard?hall=东区")["windows"][0]["window"] == "B02"
    assert [w["window"] for w in s.json("/api/v1/dashboard?window=B01")["windows"]] == ["B01"]
    assert s.json("/api/v1/dashboard?staff=SB0102")["total"]["ratings"] == 0
    assert s.json("/api/v1/dashboard?from=2026-11-24")["total"]["ratings"] == 0
    before = s.c.change_mark()
    for query, words in (("hall=西区", "no hall '西区'"), ("window=B99", "no window 'B99'"),
                         ("staff=X1", "no staff 'X1'"), ("day=2026-13-01", "bad day"),
                         ("from=2026-11-24&to=2026-11-23", "backwards"),
                         ("silent=0", "silent must be")):
        st, _h, body = s.call("/api/v1/dashboard?" + query)
        assert st == 400 and words in json.loads(body)["error"], (query, body)
        # the page says the same above today's view
        st, _h, page = s.call("/?" + query)
        html = page.decode()
        assert st == 400 and 'id="error" class="error">' in html, query
        assert words.replace("'", "&#39;") in html, (query, html[:400])
    assert s.c.change_mark() == before  # nothing changed


def test_shown_tables_as_csv_and_xlsx(dash, device_log, t0):
    s = dash()
    morning(s, device_log, t0)
    st, h, body = s.call(f"/api/v1/dashboard/export?format=csv&day={DAY}&window=B01")
    assert st == 200 and h["content-type"].startswith("text/csv")
    assert "attachment" in h["content-disposition"]
    text = body.decode("utf-8")
    assert text.startswith("\ufeff") and "\r\n" in text
    for title in ("窗口", "人员", "差评", "热力图", "未同步设备", "告警", "差评处理"):
        assert f"\r\n{title}\r\n" in text, title
    assert "B01,服务中,SB0101,张伟" in text and "'" + EVIL.replace('"', '""') in text
    assert "服务态度不好" in text and "B02" not in text  # the window filter holds
    st, h, body = s.call(f"/api/v1/dashboard/export?format=xlsx&day={DAY}")
    assert st == 200 and h["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(body))
    assert wb.sheetnames == ["窗口", "人员", "差评", "热力图", "未同步设备", "告警", "差评处理"]
    [case] = list(wb["差评处理"].iter_rows(min_row=3, values_only=True))
    assert case[0].startswith("b01-1-0-") and case[5] == EVIL and case[7] == "待回访"
    bad = list(wb["差评"].iter_rows(min_row=3, values_only=True))
    assert bad[0][4] == EVIL and wb["差评"].cell(3, 5).data_type == "s"  # text, no formula
    wins = {r[0]: r for r in wb["窗口"].iter_rows(min_row=3, values_only=True)}
    assert wins["B01"][6] == 2 and wins["B02"][1] == "未知"
    assert s.call("/api/v1/dashboard/export?format=pdf")[0] == 400
    assert s.call("/api/v1/dashboard/export?format=csv&window=B99")[0] == 400


class Stream:
    """A live stream read line by line; every read has a deadline."""

    def __init__(self, port: int, token: str, query: str = "", timeout: float = 15):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", dashboard.LIVE_PATH + query,
                          headers={"Authorization": f"Bearer {token}"})
        self.r = self.conn.getresponse()

    def event(self, deadline_s: float = 15) -> tuple[str, str] | None:
        """The next event (name, data), skipping comments; None at the stream's end."""
        end = time.monotonic() + deadline_s
        name, data = "", None
        while time.monotonic() < end:
            line = self.r.readline().decode()  # raises IncompleteRead if cut short
            if not line:
                return None
            line = line.rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data is not None:
                return name, data
        raise AssertionError("no event within the deadline")

    def close(self) -> None:
        self.conn.close()


def test_live_stream_moves_with_change_mark(dash, device_log, t0):
    s = dash()
    d = morning(s, device_log, t0)
    st = Stream(s.srv.port, s.viewer, "?max_s=20")
    try:
        assert st.r.status == 200 and st.r.getheader("content-type").startswith(
            "text/event-stream")
        assert st.r.getheader("cache-control") == "no-cache"
        assert st.event() == ("mark", str(s.c.change_mark()))
        d.rating(2, t0 + 300)
        d.send(d.seq)  # a frame stored: the mark moves, the stream says so
        assert st.event() == ("change", str(s.c.change_mark()))
    finally:
        st.close()
    # a short stream ends by itself (the browser's EventSource reconnects)
    st = Stream(s.srv.port, s.viewer, "?max_s=1")
    try:
        assert st.event()[0] == "mark"
        assert st.event(deadline_s=10) is None
    finally:
        st.close()
    for bad in ("?max_s=-1", "?max_s=600", "?max_s=x"):
        assert s.call(dashboard.LIVE_PATH + bad)[0] == 400
    assert s.call(dashboard.LIVE_PATH + "?max_s=0", token=None)[0] == 401


def test_a_revoked_user_is_out_of_an_open_stream(dash):
    """A stream is one request: the user's row is checked again at each poll, so a user
    revoked while a wall screen is open stops getting news at once, not at the stream's
    end (its page goes to the login)."""
    s = dash()
    st = Stream(s.srv.port, s.viewer, "?max_s=20")
    try:
        assert st.event()[0] == "mark"
        s.c.users.revoke("viewer-1")
        assert st.event(deadline_s=5) == ("revoked", "log in again")
        assert st.event(deadline_s=5) is None  # and the stream ends
    finally:
        st.close()
    assert s.call(dashboard.LIVE_PATH + "?max_s=0")[0] == 401


def test_stream_outlives_the_body_deadline(dash):
    """limits.py times a request's body; a live stream waits for its disconnect all its
    life after a body that was complete at once, and must not be cut for that."""
    s = dash(Limits(body_s=0.5))
    st = Stream(s.srv.port, s.viewer, "?max_s=20")
    try:
        assert st.event()[0] == "mark"
        time.sleep(1.5)  # past the body deadline
        with s.c.db.transaction():
            s.c.note_change()
        assert st.event() == ("change", str(s.c.change_mark()))  # still there to say so
    finally:
        st.close()


def test_streams_count_per_address(dash):
    s = dash(Limits(per_client_in_flight=4))  # then 2 streams an address, 2 for the rest
    live = [Stream(s.srv.port, s.viewer, "?max_s=20") for _ in range(2)]
    try:
        for st in live:
            assert st.event()[0] == "mark"
        status, h, body = s.call(dashboard.LIVE_PATH)
        assert status == 503 and b"live streams" in body and h["retry-after"] == "10"
        assert s.call("/api/v1/dashboard")[0] == 200  # the page's JSON still comes
        streams = next(r.endpoint.streams for r in s.srv.server.config.app.routes
                       if getattr(r, "path", "") == dashboard.LIVE_PATH)
        assert streams.by_host == {"127.0.0.1": 2}
    finally:
        for st in live:
            st.close()
    end = time.monotonic() + 10  # a cut stream gives its place back (bounded wait)
    while streams.by_host and time.monotonic() < end:
        time.sleep(0.05)
    assert streams.by_host == {}
    ok = Stream(s.srv.port, s.viewer, "?max_s=0")
    assert ok.r.status == 200
    ok.close()


def test_page_csp_static_and_no_external_url(dash, device_log, t0):
    s = dash()
    morning(s, device_log, t0)
    st, h, page = s.call(f"/?day={DAY}")
    html = page.decode()
    assert st == 200 and "script-src 'self'" in h["content-security-policy"]
    assert "<script>" not in html and " style=" not in html and "<style" not in html
    assert "&lt;" not in EVIL and "=HYPERLINK(&#34;http://e.vil&#34;)" in html
    # nothing from elsewhere: every src and href is a path of this server (the evil
    # ticket above is text in a cell, not a reference)
    refs = re.findall(r'(?:src|href|action)="([^"]*)"', html)
    assert refs and all(r.startswith("/") and not r.startswith("//") for r in refs), refs
    for name in ("dashboard.js", "dashboard.css"):
        text = (ROOT / "host_tools" / "collector" / "static" / name).read_text()
        assert not re.search(r"https?://|//cdn", text), name
        st, h, _b = s.call("/static/" + name, token=None)  # public: code, no data
        assert st == 200 and "max-age" in h["cache-control"]
    for bad in ("../dashboard.py", "..%2Fdashboard.py", "nope.js", "vendor/", "dashboard.html"):
        assert s.call("/static/" + bad, token=None)[0] == 404, bad
    # the login page is styled by the same public file
    st, _h, login = s.call("/login", token=None)
    assert st == 200 and "/static/dashboard.css" in login.decode()


def test_page_shows_tables_without_the_chart_file(dash, device_log, t0, monkeypatch, tmp_path):
    s = dash()
    morning(s, device_log, t0)
    monkeypatch.setattr(dashboard, "STATIC", tmp_path)  # as if the build copied nothing
    assert s.call("/static/vendor/echarts.min.js", token=None)[0] == 404
    st, _h, page = s.call(f"/?day={DAY}")
    html = page.decode()
    assert st == 200 and "<td>B01</td>" in html and "服务态度不好" in html
    assert 'class="h9">2<' in html  # the heat map as a table


def test_a_malicious_bad_rating_leaves_the_rates(dash, device_log, t0):
    """A 差评 whose appeal was upheld (cases.py) counts against no window or staff member
    on the dashboard, as in the report; its case shows closed."""
    s = dash()
    morning(s, device_log, t0)
    [case] = s.json(f"/api/v1/dashboard?day={DAY}")["cases"]["open"]["cases"]
    for action, decision in (("callback", None), ("appeal", None), ("decide", "upheld")):
        cases.act(s.c, case["id"], action, "电话回访：市民误按", "admin-1", decision)
    v = s.json(f"/api/v1/dashboard?day={DAY}")
    b01 = next(w for w in v["windows"] if w["window"] == "B01")
    assert (b01["ratings"], b01["levels"]["4"], b01["satisfied_rate"]) == (1, 0, 1.0)
    assert v["staff"][0]["levels"]["4"] == 0 and v["total"]["ratings"] == 1
    assert v["cases"]["open"]["cases"] == [] and v["cases"]["summary"]["malicious"] == 1


def test_a_bookmarked_view_keeps_its_filters_through_the_login(dash):
    from urllib.parse import unquote, urlencode

    s = dash()
    s.c.add_device("b01-1", "B01")
    st, h, _b = s.call(f"/?window=B01&day={DAY}", token=None)
    assert st == 303 and h["location"].startswith("/login?next=")
    nxt = unquote(h["location"].split("next=", 1)[1])
    assert nxt == f"/?window=B01&day={DAY}"
    conn = http.client.HTTPConnection("127.0.0.1", s.srv.port, timeout=10)
    try:
        conn.request("POST", "/login", urlencode({"name": "viewer-1", "token": s.viewer,
                                                  "next": nxt}),
                     {"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        assert r.status == 303 and r.getheader("location") == nxt
    finally:
        conn.close()

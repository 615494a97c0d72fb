"""Periodic evaluation (DB34/T 3395-2019 11.3.4: by 双月, 季度, 年度; also month and half
year): per hall, its windows and staff ranked over a period, with 满意率, 差评率, 参评率, the
satisfaction index, counts, pause and 请稍候 time, and the 差评 cases open and overdue.

A period is one of (case does not matter):

    2026        the year (年度)            2026-H1, 2026-H2   half years (半年)
    2026-Q4     a quarter (季度)           2026-B6            a bimonth (双月): B1 = Jan-Feb,
    2026-11     a month (月)                                  B2 = Mar-Apr ... B6 = Nov-Dec

and becomes a reports.Filter span (first and last day, in the hall's time zone). Every
figure comes from reports.summary, one call per hall and grouping (never a query per
window), so the evaluation is as fast as the rollups make the reports.

Ranking: by the satisfaction index, then 满意率, then the number of ratings (each
higher first, compared as printed: index to 0.1, 满意率 to 0.1%); rows equal in all three
share a rank (1, 1, 3). Windows and staff with fewer than min_ratings ratings in the
period are not ranked but listed apart, as are ratings made with no staff on duty."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from typing import Any

from firmware.clock import iso
from host_tools.collector import reports
from host_tools.errors import PingjiaError

MIN_RATINGS = 10  # fewer ratings in a period than this: listed, not ranked
ORDER = "满意度指数，其次满意率，其次评价数（均为高者在前）"
FORMS = ("YYYY (年度), YYYY-H1|H2 (半年), YYYY-Q1..Q4 (季度), "
         "YYYY-B1..B6 (双月: B1 = 1-2月 ... B6 = 11-12月), YYYY-MM (月)")
YEARS = (2000, 2099)  # the firmware's clock starts in 2000
_PERIOD = re.compile(r"^(\d{4})(?:-(?:(\d{2})|([QHB])(\d)))?$", re.IGNORECASE)
# letter -> (months in one such period, how many in a year)
_PARTS = {"Q": (3, 4), "H": (6, 2), "B": (2, 6)}
_KIND = {"Q": "quarter", "H": "half", "B": "bimonth"}
_QUARTER_ZH = ("一", "二", "三", "四")
_EXTRA = ("ratings", "invite_ratings", "no_rating", "stray", "dropped", "pause_s", "wait_s",
          "malicious")
NO_STAFF = "-"  # reports.summary's key for ratings with no staff on duty


class EvaluationError(PingjiaError, ValueError):
    """Bad input to an evaluation: one line for the CLI (exit 2) or a 400."""


@dataclass(frozen=True)
class Period:
    """A calendar period of whole months: `months` months from `first_month` of `year`."""

    text: str
    kind: str  # year, half, quarter, bimonth, month
    year: int
    first_month: int
    months: int

    @property
    def since(self) -> str:
        return f"{self.year:04d}-{self.first_month:02d}-01"

    @property
    def until(self) -> str:
        last = self.first_month + self.months - 1
        return f"{self.year:04d}-{last:02d}-{calendar.monthrange(self.year, last)[1]:02d}"

    @property
    def label(self) -> str:
        """The period as the office writes it."""
        y, m, n = self.year, self.first_month, self.months
        if self.kind == "year":
            return f"{y}年度"
        if self.kind == "half":
            return f"{y}年{'上' if m == 1 else '下'}半年"
        if self.kind == "quarter":
            return f"{y}年第{_QUARTER_ZH[m // 3]}季度"
        if self.kind == "bimonth":
            return f"{y}年{m}-{m + n - 1}月（双月）"
        return f"{y}年{m}月"

    def filter(self, hall: str | None = None, window: str | None = None,
               staff: str | None = None) -> reports.Filter:
        return reports.Filter(since=self.since, until=self.until, hall=hall, window=window,
                              staff=staff)

    def span(self, tz_min: int) -> tuple[int, int]:
        """[start, end) in seconds since 2000 UTC."""
        span = self.filter().span(tz_min)
        assert span is not None
        return span


def parse_period(text: str | None) -> Period:
    """'2026-11', '2026-Q4', '2026-H2', '2026', '2026-B6' -> Period; anything else is an
    EvaluationError naming the accepted forms."""
    m = _PERIOD.match((text or "").strip())
    if not m:
        raise EvaluationError(f"period {text!r} does not parse: use {FORMS}")
    year = int(m.group(1))
    if not YEARS[0] <= year <= YEARS[1]:
        raise EvaluationError(f"period {text!r}: the year must be {YEARS[0]}-{YEARS[1]}")
    canon = m.group(0).upper()
    if m.group(2):
        month = int(m.group(2))
        if not 1 <= month <= 12:
            raise EvaluationError(f"period {text!r}: the month must be 01-12 (use {FORMS})")
        return Period(canon, "month", year, month, 1)
    if m.group(3):
        letter, number = m.group(3).upper(), int(m.group(4))
        size, count = _PARTS[letter]
        if not 1 <= number <= count:
            raise EvaluationError(f"period {text!r}: {letter} runs 1-{count} (use {FORMS})")
        return Period(canon, _KIND[letter], year, 1 + (number - 1) * size, size)
    return Period(canon, "year", year, 1, 12)


def current_month(now: int, tz_min: int) -> Period:
    return parse_period(iso(now, tz_min)[:7])


# ---- the evaluation ---------------------------------------------------------------------------
def known_halls(db: Any) -> list[str]:
    return [h for (h,) in db.all("SELECT DISTINCT hall FROM devices ORDER BY hall")]


def _check_names(db: Any, hall: str | None, window: str | None, staff: str | None) -> None:
    """A filter naming what the collector does not know is refused, not an empty report."""
    halls = known_halls(db)
    if hall is not None and hall not in halls:
        raise EvaluationError(f"no hall {hall!r} (known: {', '.join(halls) or 'none yet'}; "
                              "pingjia device add ID --window W --hall NAME)")
    if window is not None and not db.one("SELECT 1 FROM devices WHERE win = ?", (window,)):
        raise EvaluationError(f"no window {window!r} (pingjia device list)")
    if staff is not None and not db.one("SELECT 1 FROM staff WHERE staff_no = ?", (staff,)):
        raise EvaluationError(f"no staff member {staff!r} on the roster (pingjia roster import)")


def _row(r: dict[str, Any], by: str, cases: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """A summary row as the evaluation shows it: the 差评 as a count (the list itself
    pages through /api/v1/bad), the cases beside it."""
    out = {k: v for k, v in r.items() if k != "bad"}
    out["bad"] = r["levels"][4]
    out.setdefault("malicious", 0)
    out["cases_open"], out["cases_overdue"] = cases.get(r[by], (0, 0))
    return out


def _empty(by: str, key: str) -> dict[str, Any]:
    row = reports.finish({"levels": {1: 0, 2: 0, 3: 0, 4: 0}, "bad": [],
                          **dict.fromkeys(_EXTRA, 0), "malicious": 0})
    row[by] = key
    return row


def _as_printed(x: float | None, digits: int) -> float:
    return -1.0 if x is None else round(x, digits)


def rank_key(r: dict[str, Any]) -> tuple[float, float, int]:
    """What ranks a row, higher first: the index, then 满意率, then ratings, as printed."""
    return (_as_printed(r["index"], 1), _as_printed(r["satisfied_rate"], 3), r["ratings"])


def rank(rows: list[dict[str, Any]], by: str, min_ratings: int
         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ranked, unranked): rows with at least min_ratings ratings, in rank order with
    "rank" set (equal keys share one); the others by name."""
    ranked, rest = [], []
    for r in rows:
        if r["ratings"] >= min_ratings and r[by] != NO_STAFF:
            ranked.append(r)
        else:
            rest.append(dict(r, rank=None))
    ranked.sort(key=lambda r: (tuple(-x for x in rank_key(r)), r[by]))
    out: list[dict[str, Any]] = []
    for i, r in enumerate(ranked):
        same = out and rank_key(out[-1]) == rank_key(r)
        out.append(dict(r, rank=out[-1]["rank"] if same else i + 1))
    return out, sorted(rest, key=lambda r: r[by])


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tot = _empty("hall", "")
    for r in rows:
        for k in _EXTRA:
            tot[k] += r[k]
        for level in tot["levels"]:
            tot["levels"][level] += r["levels"][level]
    tot = reports.finish(tot)
    tot["bad"] = tot["levels"][4]
    for k in ("cases_open", "cases_overdue"):
        tot[k] = sum(r[k] for r in rows)
    del tot["hall"]
    return tot


def _hall(c: Any, period: Period, hall: str, window: str | None, staff: str | None,
          min_ratings: int, groups: tuple[str, ...]) -> dict[str, Any]:
    """One hall's evaluation. A 差评 found malicious on appeal (cases.py) is not held
    against the window or the staff member: out of its row's ratings and rates, counted
    as `malicious`, as pingjia report does."""
    from host_tools.collector import cases

    tz, now = c.hall_tz_min(), c.now()
    flt = period.filter(hall, window, staff)
    out: dict[str, Any] = {"hall": hall}
    by_window = reports.summary(c.db, tz, None, "window", now, flt)
    if window is None and staff is None:  # the hall's windows with no rating are listed too
        seen = {r["window"] for r in by_window}
        by_window += [_empty("window", w) for (w,) in c.db.all(
            "SELECT DISTINCT win FROM devices WHERE hall = ? ORDER BY win", (hall,))
            if w not in seen]
    cases.discount_malicious(c.db, by_window, "window", tz, flt)
    counts = cases.open_overdue_by(c.db, flt, now, "window", tz)
    windows = [_row(r, "window", counts) for r in by_window]
    out["totals"] = _totals(windows)
    for by in groups:
        rows = windows
        if by == "staff":
            staff_rows = cases.discount_malicious(
                c.db, reports.summary(c.db, tz, None, by, now, flt), by, tz, flt)
            counts = cases.open_overdue_by(c.db, flt, now, by, tz)
            rows = [_row(r, by, counts) for r in staff_rows]
        ranked, unranked = rank(rows, by, min_ratings)
        out["windows" if by == "window" else "staff"] = {"ranked": ranked, "unranked": unranked}
    return out


def evaluate(c: Any, period: Period, hall: str | None = None, window: str | None = None,
             staff: str | None = None, min_ratings: int = MIN_RATINGS,
             groups: tuple[str, ...] = ("window", "staff")) -> dict[str, Any]:
    """The period's evaluation of one hall, or of every hall (each apart)."""
    if min_ratings < 0:
        raise EvaluationError("the minimum number of ratings to be ranked is 0 or more")
    _check_names(c.db, hall, window, staff)
    tz = c.hall_tz_min()
    start, end = period.span(tz)
    halls = [hall] if hall is not None else known_halls(c.db)
    return {
        "period": {"text": period.text, "kind": period.kind, "label": period.label,
                   "from": period.since, "to": period.until,
                   "start": iso(start, tz), "end": iso(end, tz)},
        "filter": {"window": window, "staff": staff},
        "min_ratings": min_ratings, "order": ORDER, "made": iso(c.now(), tz),
        "halls": [_hall(c, period, h, window, staff, min_ratings, groups) for h in halls],
    }


# ---- as text --------------------------------------------------------------------------------
def title(period_label: str, hall: str) -> str:
    return f"窗口服务评价 — 大厅 {hall} — {period_label}"


HEAD = ("名次", "{by}", "评价数", "满意率", "差评率", "参评率", "指数", "非常满意", "满意",
        "基本满意", "不满意", "未评", "差评件未结", "逾期", "暂停", "请稍候")


def cells(r: dict[str, Any], by: str) -> list[str]:
    """One row's cells, in HEAD's order (the text table and the PDF share them)."""
    lv = r["levels"]
    name = r[by] if by == "window" else f"{r[by]} {r.get('staff_name') or ''}".strip()
    if r[by] == NO_STAFF:
        name = "（无人在岗）"

    def count(x: int | None) -> str:
        return "-" if x is None else str(x)

    return [count(r.get("rank")), name, str(r["ratings"]), reports.pct(r["satisfied_rate"]),
            reports.pct(r["bad_rate"]), reports.pct(r["participation_rate"]),
            reports.num(r["index"]), str(lv[1]), str(lv[2]), str(lv[3]), str(lv[4]),
            str(r["no_rating"]), count(r.get("cases_open")), count(r.get("cases_overdue")),
            reports.hms(r["pause_s"]), reports.hms(r["wait_s"])]


def head(by: str) -> list[str]:
    return [h.format(by="窗口" if by == "window" else "工作人员") for h in HEAD]


def _width(s: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(_width(x) for x in col) for col in zip(*rows, strict=True)]
    return ["  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def text(ev: dict[str, Any]) -> str:
    """The evaluation as plain text tables, one section per hall."""
    p = ev["period"]
    lines = []
    for h in ev["halls"]:
        lines += [title(p["label"], h["hall"]),
                  f"{p['from']} - {p['to']} ({p['start'][19:]}); 排名: {ev['order']}; "
                  f"至少 {ev['min_ratings']} 个评价才参与排名", ""]
        t = h["totals"]
        lines.append(f"全厅: 评价 {t['ratings']}, 满意率 {reports.pct(t['satisfied_rate'])}, "
                     f"差评率 {reports.pct(t['bad_rate'])}, 参评率 "
                     f"{reports.pct(t['participation_rate'])}, 指数 {reports.num(t['index'])}; "
                     f"差评件 未结 {t['cases_open']}, 逾期 {t['cases_overdue']}; "
                     f"恶意差评 (申诉成立, 不计入) {t['malicious']}")
        for by, key in (("window", "windows"), ("staff", "staff")):
            if key not in h:
                continue
            part = h[key]
            lines += ["", "窗口排名" if by == "window" else "工作人员排名"]
            body = [cells(r, by) for r in part["ranked"]]
            lines += _table([head(by), *body]) if body else ["  (无)"]
            if part["unranked"]:
                lines.append(f"未排名 (评价少于 {ev['min_ratings']} 个):")
                lines += ["  " + x for x in _table([cells(r, by) for r in part["unranked"]])]
        lines += ["", ""]
    if not ev["halls"]:
        lines.append("no halls: no device is registered (pingjia device add)")
    return "\n".join(lines).rstrip() + "\n"


# ---- the API --------------------------------------------------------------------------------
def request_args(c: Any, q: Any) -> dict[str, Any]:
    """Query parameters -> evaluate()'s arguments (no period: this month)."""
    text = q.get("period")
    period = parse_period(text) if text else current_month(c.now(), c.hall_tz_min())
    try:
        least = int(q.get("min_ratings", MIN_RATINGS))
    except ValueError:
        raise EvaluationError("min_ratings must be a whole number") from None
    return {"period": period, "hall": q.get("hall") or None, "window": q.get("window") or None,
            "staff": q.get("staff") or None, "min_ratings": least}


def routes(collector: Any) -> list:
    """GET /api/v1/evaluation (JSON) and /api/v1/evaluation.pdf, for viewers."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from host_tools.collector import pdf
    from host_tools.collector.access import require
    from host_tools.collector.db import StorageUnavailable

    c = collector

    async def answer(request: Request, make: Any) -> Response:
        try:
            return await run_in_threadpool(make, request_args(c, request.query_params))
        except StorageUnavailable as e:
            return PlainTextResponse(f"unavailable: {e}", status_code=503,
                                     headers={"Retry-After": str(e.retry_after)})
        except (ValueError, PingjiaError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    @require("viewer")
    async def evaluation_json(request: Request) -> Response:
        return await answer(request, lambda a: JSONResponse(evaluate(c, **a)))

    @require("viewer")
    async def evaluation_pdf(request: Request) -> Response:
        def make(a: dict[str, Any]) -> Response:
            data = pdf.render(evaluate(c, **a))
            name = f"pingjia-evaluation-{a['period'].text}.pdf"
            return Response(data, media_type="application/pdf",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

        return await answer(request, make)

    return [Route("/api/v1/evaluation", evaluation_json),
            Route("/api/v1/evaluation.pdf", evaluation_pdf)]


# ---- the CLI (pingjia report --period) ---------------------------------------------------------
def command(c: Any, args: Any) -> int:
    """`pingjia report --period P [--hall H] [--by window|staff|day|hour] [--pdf FILE]`."""
    import json
    import sys

    if args.day or args.since or args.until:
        raise EvaluationError("--period or --day/--from/--to, not both")
    period = parse_period(args.period)
    by = args.by
    if by in ("day", "hour"):  # the period's course, per hall: the plain report over it
        if args.pdf:
            raise EvaluationError("--pdf takes the ranking: --by window or staff, or no --by")
        return _course(c, period, args)
    groups = (by,) if by else ("window", "staff")
    ev = evaluate(c, period, args.hall, args.window, args.staff, args.min_ratings, groups)
    if args.pdf:
        from host_tools.collector import pdf

        data = pdf.render(ev)
        try:
            with open(args.pdf, "wb") as f:
                f.write(data)
        except OSError as e:
            raise EvaluationError(f"cannot write {args.pdf}: {e.strerror}") from None
        print(f"{args.pdf}: {period.label}, {len(ev['halls'])} hall(s), {len(data)} bytes",
              file=sys.stderr)
    elif args.json:
        print(json.dumps(ev, ensure_ascii=False, indent=1))
    else:
        sys.stdout.write(text(ev))
    return 0


def _course(c: Any, period: Period, args: Any) -> int:
    import json

    _check_names(c.db, args.hall, args.window, args.staff)
    halls = [args.hall] if args.hall else known_halls(c.db)
    out = {}
    for h in halls:
        out[h] = reports.summary(c.db, c.hall_tz_min(), None, args.by, c.now(),
                                 period.filter(h, args.window, args.staff))
    if args.json:
        print(json.dumps({"period": period.text, "by": args.by, "halls": out},
                         ensure_ascii=False, indent=1))
        return 0
    for h, rows in out.items():
        print(title(period.label, h))
        print(reports.table(rows, args.by) if rows else "no ratings")
        print()
    return 0

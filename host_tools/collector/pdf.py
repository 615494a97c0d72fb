"""The printable evaluation (`pingjia report --period P --pdf FILE`,
`GET /api/v1/evaluation.pdf`): A4 landscape (sixteen columns fit it), made with
ReportLab, the CJK font (WenQuanYi Zen Hei, Debian's fonts-wqy-zenhei) embedded as a
subset so the file prints the same on any machine. One section per hall: the title, the
hall's totals, a bar chart of the index per ranked window, the windows and staff ranked
(the same cells as the text report), those not ranked; page numbers on every page."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from host_tools.collector import evaluation, reports
from host_tools.errors import PingjiaError

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
FONT_NAME = "PingjiaCJK"
CHART_WINDOWS = 40  # more ranked windows than this: the chart shows the first 40
_registered: dict[str, str] = {}  # font file -> the name ReportLab knows it by
_lock = threading.Lock()


class PdfError(PingjiaError):
    pass


def font(path: Path = FONT) -> str:
    """Register the CJK font with ReportLab (once per file); its name."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    key = str(path)
    with _lock:
        if key in _registered:
            return _registered[key]
        if not path.is_file():
            raise PdfError(f"the CJK font {path} is missing: the PDF needs it embedded "
                           "(apt-get install fonts-wqy-zenhei; make setup installs it)")
        name = f"{FONT_NAME}{len(_registered)}"
        try:  # a .ttc holds several faces: the first is Zen Hei itself
            face = TTFont(name, key, subfontIndex=0) if key.endswith(".ttc") else TTFont(name, key)
        except Exception as e:  # ReportLab's TTFError and I/O errors alike
            raise PdfError(f"the CJK font {path} cannot be read: {e}") from None
        pdfmetrics.registerFont(face)
        _registered[key] = name
        return name


def _styles(face: str) -> dict[str, Any]:
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("body", fontName=face, fontSize=9, leading=13, wordWrap="CJK")
    return {"title": ParagraphStyle("title", parent=base, fontSize=16, leading=22,
                                    spaceAfter=4),
            "h2": ParagraphStyle("h2", parent=base, fontSize=12, leading=17, spaceBefore=8,
                                 spaceAfter=4),
            "body": base,
            "cell": ParagraphStyle("cell", parent=base, fontSize=7.5, leading=9.5)}


def _table(rows: list[list[str]], face: str, widths: list[float]) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    t = Table(rows, colWidths=widths, repeatRows=1)
    t.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), face),
        ("FONTSIZE", (0, 0), (-1, -1), 7.5),
        ("LEADING", (0, 0), (-1, -1), 9.5),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDE6F0")),
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#8899AA")),
        ("ALIGN", (2, 1), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#F4F7FA")]),
    ]))
    return t


def _widths(total: float) -> list[float]:
    """The name column takes what the fifteen figures leave."""
    figures = [26, 0, 34, 38, 38, 38, 30, 42, 28, 42, 34, 26, 50, 26, 42, 42]
    figures[1] = total - sum(figures)
    return figures


def _chart(rows: list[dict[str, Any]], face: str, width: float) -> Any:
    """Bars of the index (0-100) of the ranked windows, in rank order."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    shown = rows[:CHART_WINDOWS]
    d = Drawing(width, 170, initialFontName=face)  # not ReportLab's Helvetica: see render()
    chart = VerticalBarChart()
    # a bar at most about 2 cm wide: a hall of one or two windows is no wall of blue
    chart.x, chart.y, chart.height = 36, 34, 110
    chart.width = min(width - 50, 40 + 56 * len(shown))
    chart.data = [[r["index"] or 0.0 for r in shown]]
    chart.valueAxis.valueMin, chart.valueAxis.valueMax, chart.valueAxis.valueStep = 0, 100, 20
    chart.valueAxis.labels.fontName = face
    chart.categoryAxis.categoryNames = [str(r["window"]) for r in shown]
    chart.categoryAxis.labels.fontName = face
    chart.categoryAxis.labels.fontSize = 7
    if len(shown) > 16:
        chart.categoryAxis.labels.angle = 60
        chart.categoryAxis.labels.boxAnchor = "ne"
    chart.bars[0].fillColor = colors.HexColor("#3B6EA5")
    chart.barLabelFormat = "%.1f"
    chart.barLabels.fontName = face
    chart.barLabels.fontSize = 6
    chart.barLabels.nudge = 6
    d.add(chart)
    d.add(String(36, 156, "满意度指数（按窗口，依名次）", fontName=face, fontSize=9))
    return d


def _hall(h: dict[str, Any], ev: dict[str, Any], st: dict[str, Any], face: str,
          width: float) -> list[Any]:
    from reportlab.platypus import Paragraph, Spacer

    p = ev["period"]
    t = h["totals"]
    out: list[Any] = [
        Paragraph(evaluation.title(p["label"], h["hall"]), st["title"]),
        Paragraph(f"统计期间 {p['from']} 至 {p['to']}（{p['start'][19:]}）；排名依据："
                  f"{ev['order']}；至少 {ev['min_ratings']} 个评价才参与排名；"
                  f"生成于 {ev['made'][:16].replace('T', ' ')}", st["body"]),
        Paragraph(f"全厅：评价 {t['ratings']} 个，满意率 {reports.pct(t['satisfied_rate'])}，"
                  f"差评率 {reports.pct(t['bad_rate'])}，参评率 "
                  f"{reports.pct(t['participation_rate'])}，满意度指数 "
                  f"{reports.num(t['index'])}，不满意 {t['bad']} 个；差评件未结 "
                  f"{t['cases_open']} 件，其中逾期未回访 {t['cases_overdue']} 件；恶意差评"
                  f"（申诉成立，不计入）{t['malicious']} 个", st["body"]),
    ]
    windows = h.get("windows", {}).get("ranked", [])
    if windows:
        out += [Spacer(1, 6), _chart(windows, face, width)]
    for by, key, heading in (("window", "windows", "窗口排名"), ("staff", "staff", "工作人员排名")):
        if key not in h:
            continue
        part = h[key]
        out.append(Paragraph(heading, st["h2"]))
        if part["ranked"]:
            rows = [evaluation.head(by), *(evaluation.cells(r, by) for r in part["ranked"])]
            out.append(_table(rows, face, _widths(width)))
        else:
            out.append(Paragraph("（无参与排名者）", st["body"]))
        if part["unranked"]:
            out.append(Paragraph(f"未排名（评价少于 {ev['min_ratings']} 个）", st["h2"]))
            rows = [evaluation.head(by), *(evaluation.cells(r, by) for r in part["unranked"])]
            out.append(_table(rows, face, _widths(width)))
    return out


def _numbered_canvas(face: str) -> type:
    """A canvas that writes 第 N 页，共 M 页 on every page once it knows M."""
    from reportlab.pdfgen import canvas

    class Numbered(canvas.Canvas):
        def __init__(self, *args: Any, **kw: Any):
            super().__init__(*args, **kw)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (ReportLab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont(face, 8)
                w, _h = self._pagesize
                self.drawCentredString(w / 2, 20, f"第 {self._pageNumber} 页，共 "
                                       f"{len(self._pages)} 页")
                super().showPage()
            super().save()

    return Numbered


def render(ev: dict[str, Any], font_path: Path = FONT) -> bytes:
    """The evaluation (evaluation.evaluate's result) as a PDF."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    face = font(font_path)
    st = _styles(face)
    buf = io.BytesIO()
    label = ev["period"]["label"]
    doc = SimpleDocTemplate(buf, pagesize=landscape(A4), leftMargin=12 * mm,
                            rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=14 * mm,
                            title=f"窗口服务评价 — {label}", author="pingjia",
                            subject="窗口服务评价", creator="pingjia",
                            # every page starts in this font: else each names ReportLab's
                            # Helvetica, a font the PDF does not carry
                            initialFontName=face)
    story: list[Any] = []
    for i, h in enumerate(ev["halls"]):
        if i:
            story.append(PageBreak())
        story += _hall(h, ev, st, face, doc.width)
    if not story:
        story = [Paragraph(f"窗口服务评价 — {label}", st["title"]),
                 Paragraph("尚无登记的评价器（pingjia device add）", st["body"])]
    doc.build(story, canvasmaker=_numbered_canvas(face))
    return buf.getvalue()

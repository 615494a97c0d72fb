"""`pingjia export --format haochaping|haochaping-jsonl`: every rating as a record of the
national 政务服务"好差评" system (国办发〔2019〕51号: five levels, 非常满意 5, 满意 4,
基本满意 3, 不满意 2, 非常不满意 1; the keypad's keys 1-4 are 5-2, 非常不满意 is not on it).

FIELDS below is the record, in order: the JSON key, the CSV column (Chinese, as the
office reads it) and where it comes from. The CSV is UTF-8 with a BOM, rows ended by
CRLF, every cell formula-neutralised as export.py does; the JSON lines are one object a
rating, UTF-8, as a province's 好差评 platform takes a batch upload. Times are
`YYYY-MM-DD HH:MM:SS` in the hall's time zone (the national exchange's form); a rating
whose time is still unknown has an empty time and comes last."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from host_tools.collector.export import BOM, inert

LEVELS = {1: 5, 2: 4, 3: 3, 4: 2}  # our key -> the national level
LEVEL_NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
BAD_LEVELS = (2, 1)  # 差评: 不满意 and 非常不满意
CHANNEL = "现场"  # 评价渠道: at the counter (线下, 政务服务大厅)
TERMINAL = "窗口评价器"  # 评价终端: the rating device on the window
MODES = {"invite": "邀请评价", "free": "自助评价"}  # staff pressed 请评价 / the kiosk mode

# (JSON key, CSV column, where it comes from)
FIELDS = (
    ("evaluationId", "评价编号", "DEVICE-LOG-SEQ: the device, its log's number at the collector, "
     "the record's seq; unique and stable, and a 差评's case id (pingjia case show)"),
    ("projectNo", "办件编号", "the queue ticket / 办件编号 the invitation carried (empty: none)"),
    ("hallName", "服务大厅", "the device's hall (pingjia device add --hall)"),
    ("windowNo", "窗口", "the window the device served when rated"),
    ("deviceId", "评价器编号", "the device id"),
    ("staffNo", "工号", "the staff member on duty (the badge in the slot)"),
    ("staffName", "工作人员", "their name on the roster"),
    ("assessTime", "评价时间", "when the key was pressed, hall time zone"),
    ("level", "评价等级", "5 非常满意, 4 满意, 3 基本满意, 2 不满意 (keys 1-4)"),
    ("levelName", "评价等级名称", "the level's name"),
    ("isBad", "是否差评", "1 for 不满意 (and 非常不满意), else 0"),
    ("channel", "评价渠道", "现场 (at the counter)"),
    ("terminal", "评价终端", "窗口评价器"),
    ("mode", "评价方式", "邀请评价 (staff pressed 请评价 or the queue system invited) or 自助评价 (kiosk mode)"),
    ("badReason", "差评原因", "the reason keyed after 不满意 (empty: none given)"),
)
HEADER = tuple(col for _key, col, _src in FIELDS)


def halls(db: Any) -> dict[str, str]:
    """Each device's hall."""
    return {dev: hall for dev, hall in db.all("SELECT id, hall FROM devices")} if db else {}


def _time(iso_time: str) -> str:
    return iso_time[:19].replace("T", " ")  # '2026-11-23T09:00:10+08:00' -> local time


def record(r: dict[str, Any], hall_of: dict[str, str]) -> dict[str, Any]:
    """One rating (reports.ratings's row) as a 好差评 record, keyed by FIELDS."""
    level = LEVELS.get(r["level"])
    return {
        "evaluationId": f"{r['device']}-{r['log']}-{r['seq']}",  # as cases.case_id
        "projectNo": r["ticket"] or "",
        "hallName": hall_of.get(r["device"], ""),
        "windowNo": r["window"],
        "deviceId": r["device"],
        "staffNo": r["staff_no"] or "",
        "staffName": r["staff_name"] or "",
        "assessTime": _time(r["time"]) if r["time"] else "",
        "level": level,
        "levelName": LEVEL_NAMES.get(level, "") if level else "",
        "isBad": 1 if level in BAD_LEVELS else 0,
        "channel": CHANNEL,
        "terminal": TERMINAL,
        "mode": MODES.get(r["mode"], r["mode"]),
        "badReason": r["reason"] or "",
    }


def to_csv(rows: list[dict[str, Any]], hall_of: dict[str, str]) -> str:
    out = io.StringIO()
    out.write(BOM)
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(HEADER)
    for r in rows:
        rec = record(r, hall_of)
        w.writerow([inert("" if rec[k] is None else rec[k]) for k, _c, _s in FIELDS])
    return out.getvalue()


def to_jsonl(rows: list[dict[str, Any]], hall_of: dict[str, str]) -> str:
    return "".join(json.dumps(record(r, hall_of), ensure_ascii=False) + "\n" for r in rows)


def encode(fmt: str, rows: list[dict[str, Any]], hall_of: dict[str, str]) -> bytes:
    text = to_csv(rows, hall_of) if fmt == "haochaping" else to_jsonl(rows, hall_of)
    return text.encode("utf-8")

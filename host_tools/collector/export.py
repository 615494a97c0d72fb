"""`pingjia export`: every rating, oldest first, as CSV (the header below, exactly)
or JSON. Ratings whose time is still unknown (their boot's clock never synced)
have an empty time and come last."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

HEADER = ("time", "window", "device", "staff_no", "staff_name", "ticket", "level",
          "level_name", "reason")


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    for r in rows:
        w.writerow([r[k] if r[k] is not None else "" for k in HEADER])
    return out.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    keep = HEADER + ("log", "seq", "mode")
    return json.dumps([{k: r[k] for k in keep} for r in rows], ensure_ascii=False, indent=1)

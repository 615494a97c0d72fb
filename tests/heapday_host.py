"""Host side of the heap day (tests/mp/heapday.py), for tests/test_heap.py and make bench:
24 staff on the roster of window B01, a collector for the link to sync with (full
firmware), the provisioning files, one run of the device under a heap size."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from firmware.decode import parse_iso
from firmware.roster import dumps
from host_tools.collector.api import file_bytes, provision_device, start_collector
from host_tools.device.build import BUILD, ROOT, mp_command, mp_env

T0 = parse_iso("2026-11-23T09:00:00+08:00")
# 24 staff with 69 different characters: the sign draws every name during the day
NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴刚", "徐丽",
         "孙强", "马超", "朱红", "胡军", "郭燕", "何平", "高峰", "林涛", "罗琳", "郑凯", "梁爽",
         "谢婷", "宋佳")
STAFF = [(f"0A1B2C{i:02X}", f"SB{i:04d}", n) for i, n in enumerate(NAMES)]


def run_day(work: Path, full: bool, heap: str, n: int = 500) -> dict:
    """Run the day; returns the device's figures (see heapday.py) and, with the link,
    "stored": the ratings the collector holds, "qstrs": interned strings before/after."""
    prov = work / "prov"
    prov.mkdir()
    srv = None
    try:
        if full:  # the link syncs with a real collector, provisioned as `pingjia sim` does
            srv = start_collector(str(work / "pingjia.db"), lambda: T0)
            csv = work / "staff.csv"
            csv.write_text("badge_uid,staff_no,name,department,windows\n" + "".join(
                f"{u},{no},{name},窗口服务,B01\n" for u, no, name in STAFF), encoding="utf-8")
            files = provision_device(srv.collector, "heap-1", "B01", csv, srv.sync_url)
        else:
            files = {"settings.json": {"window": "B01"}, "roster.txt": dumps(1, STAFF)}
        for name, obj in files.items():
            (prov / name).write_bytes(file_bytes(obj))
        args = [str(work / "day.img"), str(prov), str(n), str(len(STAFF))]
        if full:
            args += ["full", str(ROOT / "lib")]
        p = subprocess.run(mp_command("heapday.py", *args, heap=heap), capture_output=True,
                           text=True, cwd=BUILD, env=mp_env(), timeout=1800)
        lines = p.stdout.strip().splitlines()
        if p.returncode or not lines or lines[-1] != "PASS":
            raise AssertionError(f"heap day ({heap}) failed:\n{p.stdout}\n{p.stderr}")
        r = json.loads(lines[-2])
        r["qstrs"] = [int(w.split("=")[1].rstrip(",")) for w in p.stdout.split()
                      if w.startswith("n_qstr=")]
        if srv is not None:
            r["stored"] = srv.collector.db.value(
                "SELECT COUNT(*) FROM events WHERE kind = 'rating'")
        return r
    finally:
        if srv is not None:
            srv.stop()

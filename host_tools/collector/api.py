"""What `pingjia sim` (and tests) call to run a collector in-process and to
provision a virtual device from it.

    srv = start_collector("pingjia.db", clock=lambda: sim.wall)   # thread, free port
    files = provision_device(srv.collector, "sim-1", "B01", roster_csv="staff.csv",
                             sync_url=srv.sync_url)
    # files["device.json"], files["settings.json"]: dicts; files["roster.txt"]: bytes
    ...
    srv.stop()
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from host_tools.collector import rostercsv
from host_tools.collector.server import SYNC_PATH, ServerThread
from host_tools.collector.store import Clock, Collector, CollectorError

__all__ = ["Clock", "Collector", "CollectorError", "ServerThread", "SYNC_PATH",
           "open_collector", "provision_device", "start_collector"]


def open_collector(db: str, clock: Clock | None = None) -> Collector:
    """The collector's data (SQLite path or postgresql:// URL), migrated."""
    return Collector(db, clock)


def file_bytes(obj: Any) -> bytes:
    """A provisioning file's bytes: roster.txt is text already, the others JSON."""
    return obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False).encode()


def start_collector(db: str | Collector, clock: Clock | None = None, host: str = "127.0.0.1",
                    port: int = 0) -> ServerThread:
    """Serve /api/v1/sync, the JSON API and the dashboard in a background thread.
    clock() gives seconds since 2000-01-01 UTC (the firmware's epoch); the sim
    passes its virtual clock so the collector and the device agree. Port 0 picks
    a free port: see .port, .url, .sync_url; .stop() ends it."""
    c = db if isinstance(db, Collector) else Collector(db, clock)
    if clock is not None:
        c.clock = clock
    return ServerThread(c, host, port)


def provision_device(c: Collector, device: str, window: str, roster_csv: str | Path | None = None,
                     sync_url: str | None = None, key: str | None = None) -> dict[str, dict]:
    """Register the device (kept if it is already registered for this window),
    import the roster CSV if given, and return the device's files:
    {"device.json": {"id", "key"}, "settings.json": {...}, "roster.txt": b"PJR1 ..."}.
    Raises CollectorError or rostercsv.RosterError with a message for the user."""
    if roster_csv:
        rostercsv.load(roster_csv)  # an unreadable roster refuses before anything is stored
    with c.db.transaction():  # a sync URL refused at the end registers nothing either
        known = {d["id"]: d for d in c.devices()}
        if device in known:
            if known[device]["window"] != window:
                raise CollectorError(f"device {device} is registered for window "
                                     f"{known[device]['window']}, not {window}")
        else:
            c.add_device(device, window, key)
        if roster_csv:
            c.import_roster(roster_csv)
        return c.provisioning(device, sync_url)

"""Shared fixtures: run device code on the real MicroPython unix port."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from host_tools.device.build import (  # noqa: F401 (mp_env, micropython_bin: for tests)
    BUILD,
    compile_all,
    compile_tests,
    micropython_bin,
    mp_command,
    mp_env,
)

ROOT = Path(__file__).resolve().parents[1]
MP_DIR = ROOT / "tests" / "mp"
HEAP = "128k"  # design.md section 8: the device heap budget


@pytest.fixture(scope="session", autouse=True)
def device_build():
    """Compile every device file and device-side test script with mpy-cross once per
    session (a failure fails the run)."""
    compile_tests()
    return compile_all()


def run_mp(script: str | Path, *args: str, heap: str = HEAP, timeout: float = 300,
           input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a MicroPython script (a tests/mp name or path, or source text) under the heap
    budget."""
    p = subprocess.run(mp_command(script, *args, heap=heap), capture_output=True, text=True,
                       timeout=timeout, input=input, env=mp_env(), cwd=str(BUILD))
    if check and p.returncode != 0:
        raise AssertionError(
            f"micropython exited {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}")
    return p


@pytest.fixture
def mp():
    return run_mp


@pytest.fixture
def shm_dir(tmp_path_factory):
    """A directory in RAM (tmpfs) for flash images, falling back to tmp."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    if base is None:
        return tmp_path_factory.mktemp("flash")
    d = Path(os.path.join(str(base), f"pingjia-{os.getpid()}-{os.urandom(4).hex()}"))
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


EXAMPLES = ROOT / "examples"
MONDAY_9 = "2026-11-23T09:00:00+08:00"


class SimRun:
    """Answers of a virtual-device script, command by command."""

    def __init__(self, commands: list[str], answers: list[list[str]]):
        self.commands = commands
        self.answers = answers

    def of(self, i: int) -> list[str]:
        return self.answers[i]

    def json_of(self, i: int) -> dict:
        import json

        return json.loads(self.answers[i][0])

    def statuses(self) -> list[dict]:
        import json

        return [json.loads(a[0]) for c, a in zip(self.commands, self.answers, strict=True) if c == "status"]

    def log(self, i: int = -1) -> list[dict]:
        """The records printed by the i-th `log` command (default the last)."""
        import json

        logs = [a for c, a in zip(self.commands, self.answers, strict=True) if c == "log"]
        return [json.loads(x) for x in logs[i]]

    def ratings(self) -> list[dict]:
        return [r for r in self.log() if r["kind"] == "rating"]

    def kinds(self, kind: str) -> list[dict]:
        return [r for r in self.log() if r["kind"] == kind]

    def text(self) -> str:
        return "\n".join(f"> {c}\n" + "\n".join(a) for c, a in zip(self.commands, self.answers, strict=True))


@pytest.fixture
def sim(tmp_path):
    """Run a script on the virtual device (the real firmware on the MicroPython unix port)."""
    import argparse
    import io

    from host_tools.device.sim import Sim

    made = []

    def run(script: str, *, window: str = "B01", roster: str | None = None,
            start: str | None = MONDAY_9, sets: tuple[str, ...] = (),
            flash: str | None = None, sign: str = "text", sign_png: str | None = None,
            device: str = "sim-test") -> SimRun:
        args = argparse.Namespace(
            script=True, start=start, db=str(tmp_path / "pingjia.db"), device=device,
            window=window, roster=roster or str(EXAMPLES / "staff.csv"), set=list(sets),
            flash=flash, collector=None, micropython=None, serial=False, sign=sign,
            sign_png=sign_png)
        out = io.StringIO()
        s = Sim(args, out)
        made.append(s)
        cmds, answers = [], []
        for line in script.strip().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            out.seek(0)
            out.truncate()
            go = s.run_line(line)
            cmds.append(line.split()[0].lower())
            answers.append(out.getvalue().splitlines())
            if not go:
                break
        s.close()
        return SimRun(cmds, answers)

    yield run
    for s in made:
        s.close()


# ---- the collector served on 127.0.0.1, with a user of each role (access, limits) ------
class Served:
    """A collector (fresh SQLite file, clock at 2026-11-23 10:00 +08:00) in a server
    thread; tokens[role] for a user of each role; call() one HTTP request."""

    def __init__(self, db: str, limits=None):
        from firmware.clock import days_from_civil
        from host_tools.collector.server import ServerThread
        from host_tools.collector.store import Collector

        self.t = days_from_civil(2026, 11, 23) * 86400 + 2 * 3600  # 10:00 +08:00
        self.collector = Collector(db, lambda: self.t)
        self.tokens = {role: self.collector.users.add(f"{role}-1", role)
                       for role in ("viewer", "admin", "queue")}
        self.server = ServerThread(self.collector, limits=limits)
        self.port = self.server.port

    def call(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
             headers: dict | None = None, timeout: float = 10):
        """(status, headers as a dict of lists, body)."""
        import http.client

        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body, h)
            r = conn.getresponse()
            got: dict[str, list[str]] = {}
            for k, v in r.getheaders():
                got.setdefault(k.lower(), []).append(v)
            return r.status, got, r.read()
        finally:
            conn.close()

    def close(self) -> None:
        self.server.stop()
        self.collector.db.close()


@pytest.fixture
def served(tmp_path):
    s = Served(str(tmp_path / "served.db"))
    yield s
    s.close()


@pytest.fixture
def served_with(tmp_path):
    """served, with limits of the test's own (host_tools.collector.limits.Limits)."""
    made = []

    def start(limits=None) -> Served:
        s = Served(str(tmp_path / f"served{len(made)}.db"), limits)
        made.append(s)
        return s

    yield start
    for s in made:
        s.close()

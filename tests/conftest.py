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


# ---- pingjia serve and pingjia sim as processes of their own (limits, storage faults) ---
def _free_port_() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """`pingjia serve --db DB` (its memory and files apart from the test's, its log in a
    file); nofile: its open-file limit."""

    def __init__(self, db: str, log: Path, nofile: int | None = None):
        import resource
        import socket
        import sys
        import time

        self.port = _free_port_()
        self.log = log
        self.logf = open(log, "wb")

        def limit() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "serve", "--db", db, "--port",
             str(self.port)], cwd=ROOT, stdout=self.logf, stderr=self.logf, preexec_fn=limit)
        for _ in range(300):  # bounded: until it accepts connections
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("pingjia serve did not start: " + log.read_text())

    def get(self, path: str, token: str, timeout: float = 10) -> tuple[int, float]:
        """(status, seconds) of a GET with a token."""
        import http.client
        import time

        t = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            r = conn.getresponse()
            r.read()
            return r.status, time.monotonic() - t
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.logf.close()


@pytest.fixture
def serve_proc(tmp_path):
    made: list[ServeProcess] = []

    def start(db: str, nofile: int | None = None) -> ServeProcess:
        s = ServeProcess(db, tmp_path / f"serve{len(made)}.log", nofile)
        made.append(s)
        return s

    yield start
    for s in made:
        s.stop()


class SimProcess:
    """`pingjia sim --script` on a roster, window B01, 2026-11-23 09:00: one command, one
    answer line, timed; every wait bounded."""

    def __init__(self, db: str, *args: str):
        import sys
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "sim", "--script", "--db", db,
             "--window", "B01", "--roster", str(EXAMPLES / "staff.csv"), "--start", MONDAY_9,
             "--sign", "text", *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, bufsize=1)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def say(self, command: str, timeout: float = 60) -> tuple[str, float]:
        """The first answer line to a command, and how long it took."""
        import time

        assert self.proc.stdin
        with self.cond:
            n = len(self.lines)
        t = time.monotonic()
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.lines) > n, timeout):
                raise AssertionError(f"no answer to {command!r}")
            return self.lines[n], time.monotonic() - t

    def quit(self) -> None:
        import contextlib

        if self.proc.poll() is None:
            with contextlib.suppress(OSError, AssertionError):
                self.say("quit", timeout=20)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


@pytest.fixture
def sim_proc():
    made: list[SimProcess] = []

    def start(db: str, *args: str) -> SimProcess:
        s = SimProcess(db, *args)
        made.append(s)
        return s

    start.stop_all = lambda: [s.quit() for s in made]  # type: ignore[attr-defined]
    yield start
    for s in made:
        s.quit()


class PgCluster:
    """A throwaway PostgreSQL server on 127.0.0.1 in a temp dir (Debian's postgresql),
    which a test may stop and start again."""

    def __init__(self):
        import socket as _s
        import tempfile

        self.initdb, self.pg_ctl = _pg_bin_("initdb"), _pg_bin_("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise AssertionError("PostgreSQL server binaries not found (apt-get install "
                                 "postgresql; make setup does)")
        self.dir = tempfile.mkdtemp(prefix="pingjia-pg-")
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run it as the postgres user
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self.data = os.path.join(self.dir, "data")
        with _s.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        subprocess.run(self.as_user + [self.initdb, "-D", self.data, "-A", "trust", "-U", "pj",
                                       "-E", "UTF8"], check=True, capture_output=True,
                       timeout=120)
        self.start()
        self.url = f"postgresql://pj@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(self.as_user + [self.pg_ctl, "-D", self.data, "-l",
                                       os.path.join(self.dir, "log"), "-w", "-t", "60", "-o",
                                       f"-p {self.port} -k {self.dir} -h 127.0.0.1 -F",
                                       "start"], check=True, capture_output=True, timeout=120)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(self.as_user + [self.pg_ctl, "-D", self.data, "-m", mode, "-w",
                                       "stop"], capture_output=True, timeout=60)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin_(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    base = "/usr/lib/postgresql"
    for d in sorted(os.listdir(base), reverse=True) if os.path.isdir(base) else []:
        p = f"{base}/{d}/bin/{name}"
        if os.path.exists(p):
            return p
    return None


@pytest.fixture
def pg_cluster():
    c = PgCluster()
    yield c
    c.close()

"""Shared fixtures. Test files take what they share from here as fixtures and never import
one another (nor this file): the device code on the real MicroPython unix port, the
virtual device, collectors, the CLI as a process, and bounded reads of a process's pipes.

Every wait on a process has a deadline: a device that fails to boot fails its test with
what it said, instead of hanging the run."""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pytest

from host_tools.device.build import (
    BUILD,
    compile_all,
    compile_tests,
    micropython_bin,
    mp_command,
    mp_env,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
HEAP = "128k"  # device scripts run in this heap (the budgets themselves: tests/test_heap.py)
MONDAY_9 = "2026-11-23T09:00:00+08:00"  # a working Monday morning in the hall's time zone
EPOCH_2000 = 946684800  # the firmware's epoch (2000-01-01 UTC) in Unix seconds
# The sync device's line console and SimWLAN are test harness, not firmware: they get
# 32 KB on top of the 128 KB budget (tests/test_heap.py measures the firmware alone).
CONSOLE_HEAP = "160k"
WAIT_S = 60  # the longest a test waits for one answer from a process


# ---- device code on MicroPython -------------------------------------------------------
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


@pytest.fixture(scope="session")
def mp():
    """run_mp: a tests/mp script on the real MicroPython binary under the heap budget."""
    return run_mp


def _last_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"the script printed nothing\n--- stderr\n{p.stderr}")
    return lines[-1]


@pytest.fixture(scope="session")
def mp_json() -> Callable[..., Any]:
    """mp_json(script, *args, heap=...): run it as mp does; the JSON object on the last line
    it printed (a device-side script reports its figures so)."""
    return lambda script, *args, **kw: json.loads(_last_line(run_mp(script, *args, **kw)))


@pytest.fixture(scope="session")
def mp_pass() -> Callable[..., str]:
    """mp_pass(script, *args, heap=...): run it as mp does, its last line must be PASS (its
    own asserts held); everything it printed."""
    def run(script: str, *args: str, **kw: Any) -> str:
        p = run_mp(script, *args, **kw)
        assert _last_line(p) == "PASS", p.stdout + p.stderr
        return p.stdout
    return run


@pytest.fixture
def shm_dir(tmp_path):
    """A directory in RAM for flash images when the system has one (tmpfs at /dev/shm,
    found, not assumed), else the test's tmp_path."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    d = shm / f"pingjia-{os.getpid()}-{os.urandom(4).hex()}"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def wiring() -> argparse.Namespace:
    """The pin map of hw/esp32/wiring.py (design.md section 1), read from the file itself so
    no test keeps a copy of it: KEY_PINS, LED_PINS, INVITE_PIN, ..."""
    tree = ast.parse((ROOT / "hw" / "esp32" / "wiring.py").read_text())
    names: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "const":
                value = value.args[0]
            names[node.targets[0].id] = ast.literal_eval(value)
    return argparse.Namespace(**names)


# ---- scenario constants ------------------------------------------------------------------
@pytest.fixture(scope="session")
def examples() -> Path:
    """examples/: the roster and the scripted morning of design.md section 7."""
    return EXAMPLES


@pytest.fixture(scope="session")
def roster_csv() -> Path:
    """The example roster: SB0101 张伟 and SB0102 刘洋 at B01 (SB0101 also B02), SB0207 陈静 at B02."""
    return EXAMPLES / "staff.csv"


@pytest.fixture(scope="session")
def monday_9() -> str:
    """The virtual clock's start in the tests: Monday 2026-11-23 09:00 in Asia/Shanghai."""
    return MONDAY_9


@pytest.fixture(scope="session")
def t0() -> int:
    """monday_9 in the firmware's time: seconds since 2000-01-01 UTC."""
    return int(datetime.fromisoformat(MONDAY_9).timestamp()) - EPOCH_2000


class Clock:
    """The collector's clock, moved by the test (seconds since 2000 UTC)."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="session")
def clock_at() -> type[Clock]:
    """Clock(t): a collector clock a test moves by hand (clock.t = ...)."""
    return Clock


@pytest.fixture
def clock(t0) -> Clock:
    return Clock(t0)


# ---- bounded reads of a process's pipes -----------------------------------------------------
class Lines:
    """The lines of a text pipe, read by a thread into a queue, so that every wait for a line
    has a deadline (a bare readline() waits forever for a process that hangs)."""

    def __init__(self, pipe: IO[str], name: str = "the process"):
        self.name = name
        self.seen: list[str] = []  # every line taken so far, for failure messages
        self.ended = False
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(pipe,), daemon=True).start()

    def _pump(self, pipe: IO[str]) -> None:
        try:
            for line in pipe:
                self._q.put(line.rstrip("\n"))
        except (OSError, ValueError):  # the pipe was closed under the reader
            pass
        finally:
            self._q.put(None)

    def next(self, timeout: float = WAIT_S) -> str | None:
        """The next line, or None at the end of the output; AssertionError after timeout."""
        if self.ended:
            return None
        try:
            line = self._q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name} said nothing for {timeout} s; it said:\n"
                                 + "\n".join(self.seen[-40:])) from None
        if line is None:
            self.ended = True
        else:
            self.seen.append(line)
        return line

    def take(self, n: int, timeout: float = WAIT_S) -> list[str]:
        """The next n lines, all within timeout."""
        end = time.monotonic() + timeout
        out = []
        for _ in range(n):
            line = self.next(max(0.01, end - time.monotonic()))
            if line is None:
                raise AssertionError(f"{self.name} ended after {out}")
            out.append(line)
        return out

    def until(self, text: str, timeout: float = WAIT_S) -> str:
        """The first line holding text, within timeout."""
        end = time.monotonic() + timeout
        while True:
            line = self.next(max(0.01, end - time.monotonic()))
            if line is None:
                raise AssertionError(f"{self.name} ended without {text!r}; it said:\n"
                                     + "\n".join(self.seen[-40:]))
            if text in line:
                return line

    def rest(self, timeout: float = WAIT_S) -> list[str]:
        """Every line up to the end of the output, within timeout."""
        end = time.monotonic() + timeout
        out = []
        while (line := self.next(max(0.01, end - time.monotonic()))) is not None:
            out.append(line)
        return out

    def ready(self) -> list[str]:
        """The lines already read, without waiting (for a failure message)."""
        out = []
        while True:
            try:
                line = self._q.get_nowait()
            except queue.Empty:
                return out
            if line is None:
                self.ended = True
                return out
            out.append(line)


@pytest.fixture(scope="session")
def lines() -> type[Lines]:
    """Lines(pipe, name): bounded reads of a text pipe (next, take, until, rest)."""
    return Lines


def descendants(pid: int) -> list[int]:
    """The processes pid started, and theirs (Linux /proc; empty elsewhere)."""
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [d for k in kids for d in descendants(k)]


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Kill a process we started (if it still runs), and what it started (a launcher's
    device, socat), and reap it."""
    if proc.poll() is None:
        for pid in descendants(proc.pid):
            try:
                os.kill(pid, 9)
            except OSError:  # gone already
                pass
        proc.kill()
    proc.wait(timeout=timeout)


# ---- the CLI as a process ----------------------------------------------------------------------
def _pingjia(*args: str | Path, cwd: str | Path, input: str | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "host_tools.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=str(cwd), input=input,
                          timeout=timeout)


@pytest.fixture
def cli(tmp_path) -> Callable[..., subprocess.CompletedProcess]:
    """cli(*args, input=None, timeout=300): `pingjia ARGS` as a process, run in the test's
    tmp_path (so a forgotten --db never lands in the tree), output captured."""
    return lambda *args, **kw: _pingjia(*args, cwd=kw.pop("cwd", tmp_path), **kw)


class SimProcess:
    """`pingjia sim --script ...` as a process: command lines in, answer lines out, every
    read with a deadline. With --serial its first line names the REPL's pty (.port)."""

    def __init__(self, args: list[str], cwd: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "sim", "--script", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=str(cwd))
        self.out = Lines(self.proc.stdout, "pingjia sim")
        self.err = Lines(self.proc.stderr, "pingjia sim (stderr)")
        self.port = ""
        if "--serial" in args:
            first = self.out.next(timeout=120)
            if not (first or "").startswith("serial: "):
                raise AssertionError(f"no serial line: {first!r}\n"
                                     + "\n".join(self.err.ready()))
            self.port = first.split(" ", 1)[1].strip()

    def send(self, *commands: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(c + "\n" for c in commands))
        self.proc.stdin.flush()

    def answers(self, n: int, timeout: float = WAIT_S) -> list[str]:
        return self.out.take(n, timeout)

    def end(self, timeout: float = 30) -> None:
        """Stop it as a user does (end of input): it powers its device off and stops its
        collector. A kill would orphan the device behind --serial's socat."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop(self.proc)

    def finish(self, *commands: str, timeout: float = WAIT_S) -> str:
        """Send the last commands, close stdin and wait for the end: the rest of stdout."""
        self.send(*commands)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        rest = self.out.rest(timeout)
        self.proc.wait(timeout=timeout)
        return "\n".join(rest + ["--- stderr"] + self.err.ready())


@pytest.fixture
def pingjia_sim(tmp_path, roster_csv) -> Iterator[Callable[..., SimProcess]]:
    """pingjia_sim(*args): start `pingjia sim --script ARGS` in tmp_path (the example roster,
    Monday 9:00, unless ARGS say otherwise); every one started is killed at the end of the
    test."""
    made: list[SimProcess] = []

    def start(*args: str | Path) -> SimProcess:
        argv = [str(a) for a in args]
        if "--roster" not in argv:
            argv += ["--roster", str(roster_csv)]
        if "--start" not in argv:
            argv += ["--start", MONDAY_9]
        s = SimProcess(argv, tmp_path)
        made.append(s)
        return s

    yield start
    for s in made:
        s.end()


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A TCP port on 127.0.0.1 nothing listens on (at the time of asking)."""
    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    return pick


def wait_listening(port: int, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """Until something accepts connections on 127.0.0.1:port (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}) before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture
def pingjia_serve(tmp_path, free_port) -> Iterator[Callable[..., tuple[subprocess.Popen, int]]]:
    """pingjia_serve(db, port=None, *more): `pingjia serve --db DB [MORE options]` as a
    process, once it listens: (process, port). Every one started is stopped at the end of
    the test."""
    made: list[subprocess.Popen] = []

    def start(db: str | Path, port: int | None = None,
              *more: str) -> tuple[subprocess.Popen, int]:
        port = port or free_port()
        with open(tmp_path / f"serve-{port}.log", "wb") as log:  # what it said, if it fails
            p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "serve", "--db",
                                  str(db), "--port", str(port), *more], cwd=str(tmp_path),
                                 stdout=subprocess.DEVNULL, stderr=log)
        made.append(p)
        wait_listening(port, p)
        return p, port

    yield start
    for p in made:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stop(p)


# ---- the virtual device, in-process (host_tools.device.sim.Sim) ---------------------------
class SimRun:
    """Answers of a virtual-device script, command by command."""

    def __init__(self, commands: list[str], answers: list[list[str]]):
        self.commands = commands
        self.answers = answers

    def of(self, i: int) -> list[str]:
        return self.answers[i]

    def json_of(self, i: int) -> dict:
        return json.loads(self.answers[i][0])

    def answers_to(self, command: str) -> list[list[str]]:
        return [a for c, a in zip(self.commands, self.answers, strict=True) if c == command]

    def statuses(self) -> list[dict]:
        return [json.loads(a[0]) for a in self.answers_to("status")]

    def log(self, i: int = -1) -> list[dict]:
        """The records printed by the i-th `log` command (default the last)."""
        return [json.loads(x) for x in self.answers_to("log")[i]]

    def ratings(self) -> list[dict]:
        return [r for r in self.log() if r["kind"] == "rating"]

    def kinds(self, kind: str) -> list[dict]:
        return [r for r in self.log() if r["kind"] == kind]

    def text(self) -> str:
        return "\n".join(f"> {c}\n" + "\n".join(a) for c, a in zip(self.commands, self.answers, strict=True))


@pytest.fixture
def sim_db(tmp_path) -> str:
    """The database of the sim fixture's collector: a SQLite file. A test file whose
    point is the collector's data overrides it with one returning db_url (both backends);
    the device's own tests need not run twice."""
    return str(tmp_path / "pingjia.db")


@pytest.fixture
def sim(tmp_path, sim_db):
    """Run a script on the virtual device (the real firmware on the MicroPython unix port);
    its collector's database is sim_db (tmp_path / "pingjia.db" unless overridden)."""
    from host_tools.device.sim import Sim

    made = []

    def run(script: str, *, window: str = "B01", roster: str | None = None,
            start: str | None = MONDAY_9, sets: tuple[str, ...] = (),
            flash: str | None = None, sign: str = "text", sign_png: str | None = None,
            device: str = "sim-test") -> SimRun:
        args = argparse.Namespace(
            script=True, start=start, db=sim_db, device=device,
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


# ---- collectors ------------------------------------------------------------------------------
@pytest.fixture
def collector(db_url, clock):
    """A collector on a fresh database (db_url: SQLite, then PostgreSQL), on the test's
    clock, no network."""
    from host_tools.collector.store import Collector

    c = Collector(db_url, clock)
    yield c
    c.db.close()


def run_migration(db: Any, made: str | None) -> None:
    """Run one of db.py's MIGRATIONS again by hand, on a database whose tables it made were
    taken away (a test of an install from before it: the migrations after it cannot run
    twice). made: text in one of its statements; None: the one that is a function."""
    from host_tools.collector.db import MIGRATIONS

    mine = next(m for m in MIGRATIONS
                if any(callable(x) if made is None else made in str(x) for x in m))
    with db.transaction():
        for stmt in mine:
            if callable(stmt):
                stmt(db)
            else:
                db.execute(stmt)


class OfficeApi:
    """A collector served over HTTP on 127.0.0.1 (ServerThread); a token for a viewer and
    an admin. call() answers (status, JSON or text)."""

    def __init__(self, c: Any):
        from host_tools.collector.server import ServerThread

        self.c = c
        self.tokens = {r: c.users.add(f"{r}-1", r) for r in ("viewer", "admin")}
        self.server = ServerThread(c)

    def call(self, method: str, path: str, role: str | None = "viewer",
             body: dict | bytes | None = None) -> tuple[int, Any]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            data = json.dumps(body).encode() if isinstance(body, dict) else body
            headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
            conn.request(method, path, data, headers)
            r = conn.getresponse()
            raw = r.read()
            ctype = r.getheader("content-type", "")
            return r.status, json.loads(raw) if "json" in ctype else raw.decode()
        finally:
            conn.close()


@pytest.fixture
def office_api() -> Iterator[Callable[[Any], OfficeApi]]:
    """office_api(collector): the collector served, stopped after the test."""
    made: list[OfficeApi] = []

    def start(c: Any) -> OfficeApi:
        made.append(OfficeApi(c))
        return made[-1]

    yield start
    for a in made:
        a.server.stop()


@pytest.fixture
def office(db_url, clock):
    """A collector on the test's database (SQLite, then PostgreSQL) and clock; more on the
    same database through office.again()."""
    from host_tools.collector.store import Collector

    made: list[Collector] = []

    def again() -> Collector:
        made.append(Collector(db_url, clock))
        return made[-1]

    c = again()
    c.again = again  # type: ignore[attr-defined]
    yield c
    for x in made:
        x.db.close()


@pytest.fixture
def srv(db_url, clock):
    """A collector serving HTTP on 127.0.0.1 in a thread (srv.collector, srv.port,
    srv.sync_url), on the test's clock, on a fresh database (db_url: SQLite, then
    PostgreSQL)."""
    from host_tools.collector.api import start_collector

    s = start_collector(db_url, clock)
    yield s
    s.stop()
    s.collector.db.close()


@pytest.fixture
def provision(srv, roster_csv) -> Callable[..., dict]:
    """provision(device="dev-1", window="B01", url=None, roster=the example roster): register
    a device with srv's collector; its files (device.json, settings.json, roster.txt)."""
    from host_tools.collector.api import provision_device

    def make(device: str = "dev-1", window: str = "B01", url: str | None = None,
             roster: Path | None = roster_csv) -> dict:
        return provision_device(srv.collector, device, window, roster, url or srv.sync_url)
    return make


class DeviceLog:
    """A device as the collector sees it: a log that grows, frames that carry it."""

    def __init__(self, c, dev_id: str = "dev-1", window: str = "B01"):
        self.id = dev_id
        self.key = bytes.fromhex(c.add_device(dev_id, window))
        self.c = c
        self.seq = 0
        self.log: list[bytes] = []
        self.boot = 1
        self.nonce = 0
        self.log_id = 0x5EED0001  # the log on the device's flash (firmware/log.py)

    def add(self, kind, val=0, arg=0, staff=0, time=0) -> int:
        from firmware import record

        self.seq += 1
        self.log.append(bytes(record.pack(self.seq, kind, val, arg, staff, time)))
        return self.seq

    def rating(self, level, t, staff=1, ticket=None, mode=0) -> int:
        from firmware import record

        for chunk in record.ticket_chunks(ticket) if ticket else ():
            self.seq += 1
            self.log.append(bytes(record.pack(self.seq, record.TICKET, *chunk)))
        return self.add(record.RATING, level, mode, staff, t)

    def frame(self, first: int = 1, last: int | None = None, sver=0, rver=0) -> bytes:
        from firmware import frame

        last = self.seq if last is None else last
        self.nonce += 1
        return frame.request(self.key, self.id, self.log_id, self.boot, first,
                             b"".join(self.log[first - 1 : last]), sver, rver, self.nonce)

    def send(self, first: int = 1, last: int | None = None, **kw):
        """Ingest records first..last in one frame; the collector's answer, parsed as the
        device parses it: (ack, time, settings, roster)."""
        from firmware import frame

        body = self.frame(first, last, **kw)
        return frame.parse_answer(self.c.ingest(body), frame.Hmac(self.key), body[-32:])


@pytest.fixture(scope="session")
def device_log() -> type[DeviceLog]:
    """DeviceLog(collector, id="dev-1", window="B01"): registers a device and builds its
    records and signed frames (add, rating, frame, send)."""
    return DeviceLog


@pytest.fixture(scope="session")
def table_rows() -> Callable[..., list]:
    """table_rows(collector, *tables): every row of those tables, in key order, to compare
    what is stored before and after."""
    return lambda c, *tables: [c.db.all(f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables]


# ---- a virtual device with its Wi-Fi link, as a MicroPython process ------------------------------
class SyncDevice:
    """One boot of a virtual device running tests/mp/sync_sim.py (the real firmware and its
    sync link), driven line by line; every answer within a deadline."""

    def __init__(self, flash: Path, provision: dict[str, Any] | None = None,
                 wall: int | None = None, badge: str | None = None, heap: str = CONSOLE_HEAP):
        from host_tools.collector.api import file_bytes

        if not flash.exists():  # a blank chip, made here rather than on the device's heap
            flash.write_bytes(b"\xff" * (384 * 4096))
        cmd = [micropython_bin(), "-X", f"heapsize={heap}", "-m", "sync_sim",
               "--flash", str(flash)]
        if provision:
            d = flash.parent / (flash.name + ".prov")
            d.mkdir(exist_ok=True)
            for name, obj in provision.items():
                (d / name).write_bytes(file_bytes(obj))
            cmd += ["--provision", str(d)]
        if wall is not None:
            cmd += ["--time", str(int(wall))]
        if badge:
            cmd += ["--badge", badge]
        # the test script goes as .mpy, as the device build does: compiling it on a
        # 128 KB heap would fragment what the firmware needs
        compile_tests()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                     bufsize=1, cwd=str(BUILD), env=mp_env())
        self.out = Lines(self.proc.stdout, f"device {flash.name}")
        self.err = Lines(self.proc.stderr, f"device {flash.name} (stderr)")
        self.cmd("")

    def cmd(self, line: str, timeout: float = 120) -> list[str]:
        """Send one console line; its answer lines (up to the end-of-answer mark)."""
        p = self.proc
        assert p.stdin
        p.stdin.write(line + "\n")
        p.stdin.flush()
        out = []
        end = time.monotonic() + timeout
        while True:
            s = self.out.next(max(0.01, end - time.monotonic()))
            if s is None:
                p.wait(timeout=10)
                err = "\n".join(self.err.rest(timeout=10))
                raise AssertionError(f"device stopped ({p.returncode}): {out} {err[-2000:]}")
            if s.startswith("\x04"):
                return out
            out.append(s)

    def one(self, line: str) -> str:
        out = self.cmd(line)
        assert len(out) == 1, out
        return out[0]

    def link(self) -> dict:
        return json.loads(self.one("link"))

    def sync(self) -> str:
        return self.one("sync")

    def rate(self, level: int, ticket: str | None = None) -> None:
        assert self.one(f"invite {ticket}" if ticket else "invite").startswith("ok"), "invite"
        assert self.one(f"key {level}").startswith("ok: key"), "key"

    def kill(self) -> None:
        stop(self.proc)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    def quit(self) -> None:
        try:
            self.cmd("quit", timeout=30)
        except (AssertionError, BrokenPipeError):
            pass
        self.kill()


@pytest.fixture
def boot(shm_dir, t0) -> Iterator[Callable[..., SyncDevice]]:
    """boot(image, files=None, wall=t0, badge=None): boot a virtual device with its sync link
    on the flash image shm_dir / image (blank the first time; files: its provisioning, e.g.
    from the provision fixture). Every device booted is killed at the end of the test."""
    made: list[SyncDevice] = []
    unset = object()

    def start(image: str, files: dict | None = None, wall: Any = unset,
              badge: str | None = None) -> SyncDevice:
        d = SyncDevice(shm_dir / image, files, t0 if wall is unset else wall, badge)
        made.append(d)
        return d

    yield start
    for d in made:
        d.kill()


class Proxy:
    """TCP relay to the collector that can misbehave, one mode at a time:
    pass, refuse (close at once), cut_request (forward cut_after bytes, or all but the
    last -cut_after, then cut), stall (as cut_request, then on_stall()),
    drop_answer (the collector answers, the device never hears it),
    truncate_answer (two thirds of it), replay_answer (the first answer ever relayed),
    drip (the answer 7 bytes at a time, 2 ms apart), long_head (2 KB more header lines)."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.mode = "pass"
        self.cut_after = 40
        self.conns = 0
        self.requests: list[bytes] = []  # every request as it came (HTTP head and body)
        self.answers: list[bytes] = []  # every answer from the collector
        self.on_stall: Callable[[], Any] | None = None
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/sync"

    def _serve(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._relay, args=(c, self.mode), daemon=True).start()

    def _relay(self, c: socket.socket, mode: str) -> None:
        c.settimeout(20)
        try:
            if mode == "refuse":
                return
            req = _read_request(c)
            self.requests.append(req)
            s = socket.create_connection(self.target, timeout=20)
            try:
                if mode in ("cut_request", "stall"):
                    s.sendall(req[: self.cut_after])
                    if mode == "stall" and self.on_stall:
                        self.on_stall()  # e.g. kill the collector mid-request
                    return
                s.sendall(req)
                answer = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    answer += b
                self.answers.append(answer)
                if mode == "truncate_answer":
                    c.sendall(answer[: len(answer) * 2 // 3])
                elif mode == "replay_answer":
                    c.sendall(self.answers[0])
                elif mode == "drip":
                    for i in range(0, len(answer), 7):
                        c.sendall(answer[i : i + 7])
                        time.sleep(0.002)
                elif mode == "long_head":
                    head, _, body = answer.partition(b"\r\n")
                    c.sendall(head + b"\r\n" + b"X-Pad: %s\r\n" % (b"." * 60) * 32 + body)
                elif mode != "drop_answer":
                    c.sendall(answer)
            finally:
                s.close()
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def _read_request(c: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        b = c.recv(65536)
        if not b:
            return data
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        b = c.recv(65536)
        if not b:
            break
        body += b
    return head + b"\r\n\r\n" + body


@pytest.fixture
def proxy() -> Iterator[Callable[[int], Proxy]]:
    """proxy(port): a TCP relay to 127.0.0.1:port that plays a bad network (Proxy.mode);
    closed at the end of the test."""
    made: list[Proxy] = []

    def start(port: int) -> Proxy:
        p = Proxy(port)
        made.append(p)
        return p

    yield start
    for p in made:
        p.close()


@pytest.fixture(scope="session")
def heap_day():
    """The heap day's host side (bench/heap.py, which `make bench` runs too):
    heap_day.run_day(work, full=True, romfs=False) -> its figures. It measures on
    ../shared/tools/micropython32 when that is there; else on the 64-bit port with the
    budgets scaled, and says so in a warning."""
    import sys
    import warnings

    bench = str(ROOT / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    import heap

    inst = heap.instrument()
    if inst.bits != 32:
        warnings.warn(inst.note, stacklevel=1)
    return heap


# ---- served collectors, processes and PostgreSQL for the collector's fault tests ----------
class Served:
    """A collector (a fresh database, clock at 2026-11-23 10:00 +08:00) in a server
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
def served(db_url):
    """A Served collector on a fresh database (db_url: SQLite, then PostgreSQL)."""
    s = Served(db_url)
    yield s
    s.close()



@pytest.fixture
def served_on(db_url):
    """served, on the db_url backend: once on SQLite, once on PostgreSQL."""
    s = Served(db_url)
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



class SimLines:
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
    made: list[SimLines] = []

    def start(db: str, *args: str) -> SimLines:
        s = SimLines(db, *args)
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


@pytest.fixture(scope="session")
def pg_shared() -> Iterator[PgCluster]:
    """One PostgreSQL server for the whole run; each test takes a database of its own."""
    c = PgCluster()
    yield c
    c.close()


_DB_SEQ = iter(range(1, 1 << 30))


def _fresh_db(request, kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return str(folder / "collector.db")
    import psycopg

    pg = request.getfixturevalue("pg_shared")
    name = f"pj_{os.getpid()}_{next(_DB_SEQ)}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """The collector's database for one test, on each backend the product supports: a
    SQLite file, and a fresh database on the run's PostgreSQL server. A test that takes
    this fixture runs once on each (design.md section 6: SQLite by default, PostgreSQL
    for a province)."""
    return _fresh_db(request, request.param, tmp_path)


@pytest.fixture
def pg_url(request, tmp_path) -> str:
    """A fresh database on the run's PostgreSQL server, for a test of what only
    PostgreSQL does (several serve processes on one database)."""
    return _fresh_db(request, "postgresql", tmp_path)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request, tmp_path_factory) -> str:
    """db_url for a module-scoped fixture (a server the module's tests share): each
    backend once for the module."""
    return _fresh_db(request, request.param, tmp_path_factory.mktemp("db"))


class SerialSim:
    """`pingjia sim --serial --script` in a child process: its REPL on a pty (`port`) for
    mpremote and the technician's commands, its line commands on stdin. Every read has a
    deadline."""

    def __init__(self, db: Path, *extra: str, timeout: float = 60, serial: bool = True):
        import sys

        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "sim", *(["--serial"] if serial else []),
             "--script", "--db", str(db), "--roster", str(EXAMPLES / "staff.csv"), "--start",
             MONDAY_9, "--sign", "text", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1, cwd=ROOT)
        self._buf = b""  # read from the pipe, not yet returned as lines
        self.port = self.hci = None
        for flag, attr in (("--serial", "port"), ("--ble", "hci")):
            if flag in extra or (flag == "--serial" and serial):
                line = self.readline()
                want = attr.replace("port", "serial") + ": "
                assert line.startswith(want), line + self.proc.stderr.read()
                setattr(self, attr, line.split(" ", 1)[1].strip())

    def readline(self) -> str:
        """One line of the sim's output ("" at its end), waiting at most self.timeout."""
        import select

        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            r, _, _ = select.select([fd], [], [], self.timeout)
            if not r:
                raise AssertionError(f"the sim said nothing for {self.timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                line, self._buf = self._buf, b""
                return line.decode()
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode() + "\n"

    def send(self, *commands: str) -> list[str]:
        """Run commands, then `status`; every line they printed, the status JSON last."""
        self.proc.stdin.write("".join(c + "\n" for c in (*commands, "status")))
        self.proc.stdin.flush()
        out = []
        dropped = False  # the sim cut a device whose app stopped: the status may be lost
        while True:
            line = self.readline()
            if not line:
                raise AssertionError("the sim ended:\n" + "\n".join(out))
            out.append(line.rstrip("\n"))
            if line.startswith('{"screen"'):
                if dropped:  # a status answered by the powered-off sim may follow
                    self._drain(out)
                return out
            if line.startswith(("error: the app is stopped", "error: the device stopped")):
                if not dropped:
                    dropped = True
                    self.proc.stdin.write("status\n")
                    self.proc.stdin.flush()

    def _drain(self, out: list[str], quiet_s: float = 0.5) -> None:
        import select

        fd = self.proc.stdout.fileno()
        while select.select([fd], [], [], quiet_s)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._buf += chunk
        while b"\n" in self._buf:
            out.append(self.readline().rstrip("\n"))

    def status(self) -> dict:
        import json

        return json.loads(self.send()[-1])

    def close(self) -> str:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        stop(self.proc)  # and what it started, if quit did not end it
        return self.proc.stderr.read()


@pytest.fixture
def serial_sim(tmp_path):
    """Start virtual devices with their REPL on a pty: serial_sim(db, *sim options)."""
    made: list[SerialSim] = []

    def start(db: Path | None = None, *extra: str, serial: bool = True) -> SerialSim:
        s = SerialSim(db or tmp_path / "hall.db", *extra, serial=serial)
        made.append(s)
        return s

    yield start
    for s in made:
        s.close()


def _partition_table(parts) -> bytes:
    """An ESP-IDF partition table binary: (label, type, subtype, offset, size) rows."""
    import struct

    out = b"".join(struct.pack("<2sBBII16sI", b"\xaa\x50", t, sub, off, size,
                               label.encode(), 0) for label, t, sub, off, size in parts)
    return out + b"\xff" * (0xC00 - len(out))


@pytest.fixture
def esp32_bin(tmp_path):
    """A MicroPython-shaped ESP32 .bin made with esptool's own tools: a bootloader and an
    app image (ESP32FirmwareImage: segments, checksum, SHA-256 digest) and
    ESP32_GENERIC's partition table, merged by `esptool merge-bin` at 0x1000, as
    micropython.org ships it. Returns (path of the merged .bin, path of the app alone)."""
    import sys

    from esptool.bin_image import ELFSection, ESP32FirmwareImage

    def image(name, addr, payload):
        img = ESP32FirmwareImage()
        img.entrypoint = addr + 0x400
        img.segments = [ELFSection(b".iram0.text", addr, payload, 0),
                        ELFSection(b".dram0.data", 0x3FFB0000, bytes(range(256)) * 8, 0)]
        p = tmp_path / name
        p.write_bytes(img.save(None))
        return p

    boot = image("bootloader.bin", 0x40080000, b"\x01" * 2048)
    app = image("micropython.bin", 0x40090000, bytes(range(251)) * 64)
    table = tmp_path / "partitions.bin"
    table.write_bytes(_partition_table([
        ("nvs", 1, 2, 0x9000, 0x6000), ("phy_init", 1, 1, 0xF000, 0x1000),
        ("factory", 0, 0, 0x10000, 0x1F0000), ("vfs", 1, 0x81, 0x200000, 0x200000)]))
    merged = tmp_path / "ESP32_GENERIC.bin"
    p = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32", "merge-bin",
                        "-o", str(merged), "--target-offset", "0x1000", "0x1000", str(boot),
                        "0x8000", str(table), "0x10000", str(app)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return merged, app

"""Helpers for the sync tests (no tests here): a virtual device with its Wi-Fi
link as a MicroPython process, a collector in a thread, and a TCP proxy that
plays a bad network."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

from conftest import BUILD, compile_tests, micropython_bin, mp_env

from firmware.decode import parse_iso
from host_tools.collector.api import file_bytes, provision_device, start_collector

EXAMPLES = Path("/work/shared/examples")
ROSTER = (Path(__file__).resolve().parents[1] / "examples" / "staff.csv")
if not ROSTER.exists():
    ROSTER = EXAMPLES / "staff.csv"
# The line console and SimWLAN are test harness, not firmware: they get 32 KB on top of
# the 128 KB budget (tests/test_heap.py measures the firmware and its link alone).
CONSOLE_HEAP = "160k"
T0 = parse_iso("2026-11-23T09:00:00+08:00")


class Clock:
    """The collector's clock, moved by the test (seconds since 2000 UTC)."""

    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _env() -> dict:
    """Like the device build, the test script goes as .mpy: compiling it on a
    128 KB heap would fragment what the firmware needs."""
    compile_tests()
    return mp_env()


class Device:
    """One boot of a virtual device running tests/mp/sync_sim.py."""

    def __init__(self, flash: Path, provision: dict[str, dict] | None = None,
                 wall: int | None = None, badge: str | None = None, heap: str = CONSOLE_HEAP):
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
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                     bufsize=1, cwd=str(BUILD), env=_env())
        self.cmd("")

    def cmd(self, line: str) -> list[str]:
        p = self.proc
        assert p.stdin and p.stdout
        p.stdin.write(line + "\n")
        p.stdin.flush()
        out = []
        while True:
            s = p.stdout.readline()
            if not s:
                p.wait(timeout=10)
                err = p.stderr.read() if p.stderr else ""
                raise AssertionError(f"device stopped ({p.returncode}): {out} {err[-2000:]}")
            s = s.rstrip("\n")
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
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    def quit(self) -> None:
        try:
            self.cmd("quit")
        except (AssertionError, BrokenPipeError):
            pass
        self.kill()


class Proxy:
    """TCP relay to the collector that can misbehave, one mode at a time:
    pass, refuse (close at once), cut_request (forward cut_after bytes, or all but the
    last -cut_after, then cut),
    drop_answer (the collector answers, the device never hears it),
    drip (the answer 7 bytes at a time, 2 ms apart), long_head (2 KB more header lines)."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.mode = "pass"
        self.cut_after = 40
        self.conns = 0
        self.requests: list[bytes] = []  # every request as it came (HTTP head and body)
        self.answers: list[bytes] = []  # every answer from the collector
        self.on_stall = None
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


def collector(tmp: Path, clock: Clock | None = None, db: str | None = None):
    return start_collector(db or str(tmp / "pingjia.db"), clock or Clock())


def provision(srv, device: str = "dev-1", window: str = "B01", url: str | None = None,
              roster: Path | None = ROSTER) -> dict[str, dict]:
    return provision_device(srv.collector, device, window, roster, url or srv.sync_url)


__all__ = ["Clock", "Device", "Proxy", "T0", "collector", "provision", "ROSTER"]

"""boot.py and main.py on the ESP32 double (tests/esp32/: strict machine, network and esp32
modules on the unix port): the real board builds from hw/esp32/, mounts its littlefs, starts
the app, takes a rating from the keypad and the badge slot, and keeps going when a chip is
missing."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from firmware import record
from host_tools.device.build import BUILD, ROOT, compile_all, micropython_bin
from host_tools.device.deploy import device_files

DOUBLE = ROOT / "tests" / "esp32"
ROSTER = "PJR1 1\n0A1B2C3D\tSB0101\t张伟\n"


class Board:
    """One ESP32 on the double: its flash image and RTC memory outlive a process,
    as the chip's do a reset."""

    def __init__(self, tmp: Path, wiring, lines, **world):
        self.tmp = tmp
        self.flash = tmp / "flash.img"
        self.wiring = wiring
        self.world = {"flash": str(self.flash), "host": str(tmp), "rtc": "/host/rtc.bin",
                      "pulled_up": [wiring.INVITE_PIN, wiring.STATUS_PIN], "reader": True,
                      "panel": "4.2",
                      "watch": {str(p): f"led{i}" for i, p in enumerate(wiring.LED_PINS)}}
        self.world.update(world)
        self.proc: subprocess.Popen | None = None
        self._lines = lines  # the shared bounded reader (conftest's Lines)
        self.out = None

    def install(self, extra: dict[str, bytes] | None = None) -> None:
        """The flash as deploy and provision leave it."""
        compile_all()
        files = [[str(src), dest] for src, dest in device_files()]
        for name, data in (extra or {}).items():
            p = self.tmp / f"provision-{name.replace('/', '_')}"
            p.write_bytes(data)
            files.append([str(p), name])
        (self.tmp / "files.json").write_text(json.dumps(files))
        self._mp("flashimage.py", str(self.flash), str(self.tmp / "files.json"), check=True)

    def _env(self) -> dict:
        (self.tmp / "world.json").write_text(json.dumps(self.world))
        return dict(os.environ, MICROPYPATH=f"{DOUBLE}:{BUILD}:.frozen",
                    PINGJIA_ESP32_WORLD=str(self.tmp / "world.json"))

    def _mp(self, script: str, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        p = subprocess.run([micropython_bin(), "-X", "heapsize=2M", str(DOUBLE / script), *args],
                           capture_output=True, text=True, env=self._env(), timeout=120,
                           cwd=self.tmp)
        if check:
            assert p.returncode == 0, p.stdout + p.stderr
        return p

    def power_on(self, **world) -> None:
        self.world.update(world)
        self.proc = subprocess.Popen(
            [micropython_bin(), "-X", "heapsize=2M", str(DOUBLE / "port.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=self._env(), cwd=self.tmp, bufsize=1)
        self.out = self._lines(self.proc.stdout, "the board")  # this boot's lines only

    @property
    def seen(self) -> list[str]:
        """The lines of this boot read so far."""
        return self.out.seen

    def expect(self, text: str, timeout: float = 20) -> str:
        """The board's first line holding text, within timeout."""
        return self.out.until(text, timeout)

    def expect_end(self, timeout: float = 20) -> list[str]:
        """Until the process ends (a reset ends it, as a power cut would): its last lines."""
        return self.out.rest(timeout)

    def send(self, line: str) -> str:
        assert self.proc is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.expect("@esp32 ok " + line.split()[0])

    def status(self) -> dict:
        """The app's status() as a technician reads it at the REPL."""
        assert self.proc is not None
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        return json.loads(self.expect("@esp32 status ").split(" ", 2)[2])

    def quit(self) -> None:
        """Stop the board's app from the test side and wait for the process to end."""
        assert self.proc is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.expect_end()
        self.proc.wait(timeout=10)
        self.proc = None

    def power_off(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def put(self, name: str, data: bytes) -> None:
        """Write one file onto the board's flash, as a technician in safe mode would."""
        src = self.tmp / "put.bin"
        src.write_bytes(data)
        code = (
            "import vfs, esp32\n"
            "vfs.mount(vfs.VfsLfs2(esp32.flash()), '/board')\n"  # as flashimage.py does
            f"with open('/board/{name}', 'wb') as f:\n"
            f"    f.write(open('{src}', 'rb').read())\n"
            "vfs.umount('/board')\n")
        (self.tmp / "put.py").write_text(code)
        p = subprocess.run([micropython_bin(), "-X", "heapsize=2M", str(self.tmp / "put.py")],
                           capture_output=True, text=True, env=self._env(), timeout=60,
                           cwd=self.tmp)
        assert p.returncode == 0, p.stdout + p.stderr

    def boot_reasons(self) -> list[str]:
        """Why each boot happened, as the app recorded it (BOOT_WHY records)."""
        return [record.BOOT_NAMES[r["val"]] for r in self.log() if r["kind"] == record.BOOT_WHY]

    def log(self) -> list[dict]:
        """Every record on the flash, read by the log's own reader."""
        code = (
            "import sys, vfs, json, esp32\n"
            "bdev = esp32.flash()\n"
            "from firmware.storage import LFS_OPTS\n"
            "vfs.mount(vfs.VfsLfs2(bdev, **LFS_OPTS), '/board')\n"
            "from firmware.log import Log\n"
            "for r in Log('/board').records(0):\n"
            "    print(json.dumps(list(r[:6])))\n")
        (self.tmp / "readlog.py").write_text(code)
        p = subprocess.run([micropython_bin(), "-X", "heapsize=2M", str(self.tmp / "readlog.py")],
                           capture_output=True, text=True, env=self._env(), timeout=60,
                           cwd=self.tmp)
        assert p.returncode == 0, p.stdout + p.stderr
        keys = ("seq", "kind", "val", "arg", "staff", "time")
        return [dict(zip(keys, json.loads(x), strict=True)) for x in p.stdout.splitlines()]


@pytest.fixture
def board(tmp_path, wiring, lines):
    b = Board(tmp_path, wiring, lines)
    yield b
    b.power_off()


def test_the_board_boots_from_its_flash_and_takes_a_rating(board):
    board.install({"roster.txt": ROSTER.encode(),
                   "settings.json": json.dumps({"window": "B01"}).encode()})
    board.power_on()
    board.expect("@esp32 boot 1")
    board.send("badge 0A1B2C3D")
    time.sleep(1.0)  # the badge task polls the slot
    board.send(f"press {board.wiring.INVITE_PIN} 120")
    board.send(f"press {board.wiring.KEY_PINS[1]} 120")
    time.sleep(0.5)
    board.quit()
    ratings = [r for r in board.log() if r["kind"] == record.RATING]
    assert [r["val"] for r in ratings] == [2]
    assert board.boot_reasons() == ["power_on"]


def test_a_missing_reader_is_an_alert_on_the_sign_not_a_dead_device(board):
    board.install({"roster.txt": ROSTER.encode()})
    board.power_on(reader=False)
    board.expect("@esp32 boot 1")
    board.expect("reader: MFRC522 not answering")
    board.send("badge 0A1B2C3D")
    time.sleep(2)
    status = board.status()
    assert "reader_fault" in status["alerts"]
    assert "⚠" in status["sign"]  # the sign carries the most urgent technician alert
    assert status["screen"] == "paused"  # nobody can sign in: the window stays paused


def test_a_dead_panel_leaves_the_keypad_working(board):
    board.install({"roster.txt": ROSTER.encode()})
    board.power_on(panel=None)  # BUSY floats high: every update times out
    board.expect("@esp32 boot 1")
    board.send("badge 0A1B2C3D")
    time.sleep(1.0)
    board.send(f"press {board.wiring.INVITE_PIN} 120")
    board.send(f"press {board.wiring.KEY_PINS[0]} 120")
    time.sleep(0.5)
    board.quit()
    assert [r["val"] for r in board.log() if r["kind"] == record.RATING] == [1]


def test_the_invite_key_held_at_power_on_is_safe_mode(board):
    board.install({"roster.txt": ROSTER.encode()})
    board.power_on(held=[board.wiring.INVITE_PIN])
    board.expect("safe mode (key)")
    board.expect("@esp32 repl")  # main.py built nothing: the REPL is the technician's
    assert not any("wdt started" in line for line in board.seen)  # no watchdog to fight
    board.power_off()
    board.power_on(held=[])
    board.expect("wdt started")  # a normal boot again
    board.send("badge 0A1B2C3D")
    board.quit()
    assert board.boot_reasons() == ["safe_mode_key"]  # the next normal boot records why


def test_three_failed_boots_in_a_row_are_safe_mode(board):
    board.install({"roster.txt": ROSTER.encode(), "firmware/app.mpy": b"not bytecode"})
    for boot in range(3):
        board.power_on(reset_cause=1 if boot == 0 else 2)
        board.expect("the app did not start")
        board.expect("@esp32 reset hard")
        board.expect_end()
        board.power_off()
    board.power_on(reset_cause=2)
    board.expect("safe mode (crashes)")
    board.expect("@esp32 repl")
    board.power_off()
    # the technician puts the app right from the REPL; the next boot records why it came
    app = dict((dest, src) for src, dest in device_files())["firmware/app.mpy"]
    board.put("firmware/app.mpy", Path(app).read_bytes())
    board.power_on(reset_cause=2)
    board.expect("wdt started")
    board.send("badge 0A1B2C3D")
    board.quit()
    assert board.boot_reasons() == ["safe_mode_crashes"]


def test_a_hung_loop_is_reset_by_the_watchdog_and_a_fed_one_is_not(board):
    board.install({"roster.txt": ROSTER.encode()})
    board.power_on()
    board.expect("wdt started 10000")
    time.sleep(11)  # longer than the watchdog's timeout: the app feeds it
    board.send("badge 0A1B2C3D")
    assert not any("reset" in line for line in board.seen)
    board.proc.stdin.write("stall\n")  # the bus hangs the CPU
    board.proc.stdin.flush()
    board.expect("@esp32 stalled")
    board.expect("@esp32 reset wdt", timeout=15)
    board.power_off()
    board.power_on(reset_cause=3)  # WDT_RESET: the board comes back
    board.expect("wdt started")
    board.send("badge 0A1B2C3D")
    board.quit()
    assert board.boot_reasons() == ["power_on", "watchdog"]


def test_leds_buzzer_and_time_to_status_are_the_same_for_every_key(board):
    """design.md section 2: nothing staff can see or hear tells which key was pressed. After
    each key a second key follows (不满意's reason; for keys 1-3 a press that counts nothing)."""
    board.install({"roster.txt": ROSTER.encode(), "settings.json": json.dumps(
        {"window": "B01", "reason_s": 3, "thanks_s": 1, "invite_s": 10}).encode()})
    board.power_on()
    board.expect("wdt started")
    board.send("badge 0A1B2C3D")
    time.sleep(1.0)
    pins = board.wiring.KEY_PINS
    seqs, waits = [], []
    for k in range(4):
        board.send(f"press {board.wiring.INVITE_PIN} 100")
        time.sleep(0.5)
        board.send("trace")  # forget the invitation's blinking
        t = time.monotonic()
        board.send(f"press {pins[k]} 100")
        time.sleep(0.5)
        board.send(f"press {pins[0]} 100")
        while board.status()["screen"] != "serving":
            assert time.monotonic() - t < 10, "the status never came back"
            time.sleep(0.05)
        waits.append(time.monotonic() - t)
        board.proc.stdin.write("trace\n")
        board.proc.stdin.flush()
        events = json.loads(board.expect("@esp32 trace ").split(" ", 2)[2])
        # from the beep on: a blink may fall between the trace command and the key
        start = next(i for i, e in enumerate(events) if e[1] == "pwm" and e[2][1])
        seqs.append([(e[1], e[2] if e[1] != "pwm" else list(e[2])) for e in events[start:]])
    board.quit()
    assert seqs[0] and all(s == seqs[0] for s in seqs), seqs
    assert max(waits) - min(waits) < 0.5, waits  # reason_s + thanks_s = 4 s after each key
    assert 3.5 < min(waits), waits
    ratings = [r for r in board.log() if r["kind"] == record.RATING]
    assert [r["val"] for r in ratings] == [1, 2, 3, 4]

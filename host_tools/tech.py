"""The technician's path: MicroPython onto a board (esptool), the firmware onto
MicroPython (mpy-cross + mpremote, aioble via mip), a device's identity and
configuration onto its flash (provision), and its log off it (pull --usb).
PORT may be a board's serial port or a virtual device's pty (`pingjia sim --serial`)."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from host_tools.build import BUILD, ROOT, Manifest, compile_all, tool

ESP32_APP_MAGIC = 0xE9


class TechError(RuntimeError):
    pass


def mpremote(port: str, *args: str, timeout: float = 300) -> str:
    """Run mpremote on PORT without a reset (`resume`: on the unix port a soft reset
    ends the process); its output, or TechError with what it said."""
    cmd = [tool("mpremote"), "connect", port, "resume", *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise TechError("mpremote is not installed (pip install mpremote)") from None
    except subprocess.TimeoutExpired:
        raise TechError(f"mpremote timed out on {port}") from None
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or ["failed"])[-1]
        raise TechError(f"mpremote on {port}: {err}")
    return p.stdout


def soft_reset(port: str) -> None:
    """Reboot the device so it reads its new files (a board reboots; the virtual
    device's process ends and `pingjia sim` boots it again)."""
    subprocess.run([tool("mpremote"), "connect", port, "resume", "soft-reset"],
                   capture_output=True, text=True, timeout=60)


def device_files() -> list[tuple[Path, str]]:
    """(local file, device path) for everything deploy puts on a board: what the
    production manifest freezes, as .mpy files (boot.py and main.py as source: the
    board runs those two by file name), and lib/."""
    compile_all()
    out = []
    for src, rel in Manifest().files:
        if "/" in rel:
            mpy = str(Path(rel).with_suffix(".mpy"))
            out.append((BUILD / mpy, mpy))
        else:
            out.append((src, rel))
    lib = ROOT / "lib"
    if lib.is_dir():
        for f in sorted(lib.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                out.append((f, f"lib/{f.relative_to(lib)}"))
    return out


def _mkdirs_code(paths: list[str]) -> str:
    dirs = sorted({str(Path(p).parent) for p in paths if "/" in p}, key=len)
    return f"import os\nfor d in {dirs!r}:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"


def deploy(port: str, aioble: bool = True) -> list[str]:
    files = device_files()
    mpremote(port, "exec", _mkdirs_code([d for _, d in files]))
    args: list[str] = []
    for local, dest in files:
        args += ["fs", "cp", str(local), f":{dest}", "+"]
    mpremote(port, *args[:-1])
    # check what landed: names and sizes
    names = [d for _, d in files]
    sizes = mpremote(port, "exec", f"import os\nfor p in {names!r}:\n print(p, os.stat(p)[6])")
    got = dict(line.rsplit(" ", 1) for line in sizes.splitlines() if " " in line)
    bad = [d for local, d in files if got.get(d) != str(local.stat().st_size)]
    if bad:
        raise TechError(f"deploy: files did not land whole: {', '.join(bad)}")
    if aioble:
        mpremote(port, "mip", "install", "aioble")
    return [d for _, d in files]


def flash_commands(port: str, firmware: Path, chip: str, baud: int, erase: bool) -> list[list[str]]:
    base = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud)]
    cmds = [base + ["erase-flash"]] if erase else []
    offset = "0x1000" if chip == "esp32" else "0x0"
    cmds.append(base + ["write-flash", "-z", offset, str(firmware)])
    return cmds


def check_firmware(firmware: Path) -> None:
    try:
        head = firmware.read_bytes()[:1]
    except OSError as e:
        raise TechError(f"{firmware}: {e.strerror}") from None
    if not head or head[0] != ESP32_APP_MAGIC:
        raise TechError(f"{firmware}: not an ESP32 firmware image (want the MicroPython "
                        "ESP32_GENERIC .bin from micropython.org/download)")


# ---- provision: identity, settings and roster onto a device --------------------
def provision(port: str, db: str, device: str, window: str, roster: str | None,
              sync_url: str | None, ssid: str | None, password: str | None) -> list[str]:
    from host_tools.collector_api import file_bytes, open_collector, provision_device

    col = open_collector(db)
    provision_device(col, device, window, roster, sync_url)
    files = col.provisioning(device, sync_url)
    if ssid:
        files["device.json"] = dict(files["device.json"], ssid=ssid, password=password or "")
    with tempfile.TemporaryDirectory() as d:
        args: list[str] = []
        for name, obj in files.items():
            (Path(d) / name).write_bytes(file_bytes(obj))
            args += ["fs", "cp", str(Path(d) / name), f":{name}", "+"]
        mpremote(port, *args[:-1])
    return sorted(files)


# ---- pull --usb: the log off a device, ingested like a sync ----------------------
def read_log_dir(d: Path) -> tuple[list[bytes], int]:
    """Valid records of a copied log directory (segments, then the journal), in seq order,
    each seq once; and how many failed their CRC."""
    from firmware import record as R

    out: dict[int, bytes] = {}
    bad = 0
    names = sorted(p.name for p in d.iterdir() if p.name.startswith("s") and len(p.name) == 9)
    for name in [*names, "j"]:
        p = d / name
        if not p.exists():
            continue
        data = p.read_bytes()
        for off in range(0, len(data) - len(data) % R.SIZE, R.SIZE):
            if not R.valid(data, off):
                bad += 1
                continue
            out.setdefault(R.seq_of(data, off), data[off:off + R.SIZE])
    return [out[s] for s in sorted(out)], bad


def pull_usb(port: str, db: str) -> dict:
    import random

    from firmware import frame as F
    from host_tools.collector_api import open_collector

    listing = mpremote(port, "exec", "import os\nprint(os.listdir('log'))")
    names = ast.literal_eval(listing.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as d:
        args: list[str] = ["fs", "cp", ":device.json", f"{d}/device.json"]
        for n in names:
            if n == "j" or n == "state" or (n.startswith("s") and len(n) == 9):
                args += ["+", "fs", "cp", f":log/{n}", f"{d}/{n}"]
        mpremote(port, *args)
        dev = json.loads((Path(d) / "device.json").read_text())
        state = json.loads((Path(d) / "state").read_text()) if (Path(d) / "state").exists() \
            else {}
        records, bad = read_log_dir(Path(d))
    col = open_collector(db)
    key = col.device_key(dev["id"])
    if key is None:
        raise TechError(f"device {dev['id']} is not in {db} (pingjia device add)")
    boot = int(state.get("boot", 0))
    sent = 0
    for i in range(0, len(records), 256):
        chunk = records[i:i + 256]
        first = int.from_bytes(chunk[0][:4], "little")
        body = F.request(key, dev["id"], boot, first, b"".join(chunk),
                         nonce=random.getrandbits(32))
        col.ingest(body)  # the same checks and idempotent store as a Wi-Fi sync
        sent += len(chunk)
    return {"device": dev["id"], "records": sent, "corrupt": bad}


# ---- CLI ----------------------------------------------------------------------
def add_parser(sub) -> None:
    p = sub.add_parser("deploy", help="copy the firmware (.mpy) onto a device with mpremote")
    p.add_argument("port", metavar="PORT", help="serial port, or a virtual device's pty")
    p.add_argument("--no-aioble", action="store_true",
                   help="skip `mip install aioble` (it needs the internet)")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("flash", help="write MicroPython onto an ESP32 with esptool")
    p.add_argument("port", metavar="PORT")
    p.add_argument("--firmware", required=True, type=Path,
                   help="MicroPython ESP32_GENERIC .bin")
    p.add_argument("--chip", default="esp32")
    p.add_argument("--baud", type=int, default=460800)
    p.add_argument("--no-erase", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the esptool commands only")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("provision", help="device id, key, Wi-Fi, window, roster onto a device")
    p.add_argument("port", metavar="PORT")
    p.add_argument("--device", required=True, help="device id (at most 10 characters)")
    p.add_argument("--window", required=True)
    p.add_argument("--roster", help="import this roster CSV first")
    p.add_argument("--url", help="the collector's sync URL, e.g. http://10.0.0.5:8080/api/v1/sync")
    p.add_argument("--ssid")
    p.add_argument("--password")
    p.add_argument("--db", default="pingjia.db", help="collector database (SQLite path or URL)")
    p.set_defaults(func=cmd_provision)

    p = sub.add_parser("pull", help="copy a device's log into the collector")
    p.add_argument("--usb", metavar="PORT", required=True,
                   help="the device's serial port (or a virtual device's pty)")
    p.add_argument("--db", default="pingjia.db", help="collector database (SQLite path or URL)")
    p.set_defaults(func=cmd_pull)


def cmd_deploy(args: argparse.Namespace) -> int:
    try:
        files = deploy(args.port, aioble=not args.no_aioble)
    except TechError as e:
        print(f"pingjia deploy: {e}", file=sys.stderr)
        return 1
    print(f"deployed {len(files)} files to {args.port}"
          + ("" if args.no_aioble else " and installed aioble"))
    soft_reset(args.port)
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    from host_tools.collector import CollectorError
    from host_tools.rostercsv import RosterError

    try:
        names = provision(args.port, args.db, args.device, args.window, args.roster, args.url,
                          args.ssid, args.password)
    except (TechError, CollectorError, RosterError) as e:
        print(f"pingjia provision: {e}", file=sys.stderr)
        return 1
    print(f"provisioned {args.device} (window {args.window}): {', '.join(names)}")
    soft_reset(args.port)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from firmware.frame import FrameError
    from host_tools.collector import CollectorError

    try:
        r = pull_usb(args.usb, args.db)
    except (TechError, CollectorError, FrameError, ValueError, OSError) as e:
        print(f"pingjia pull: {e}", file=sys.stderr)
        return 1
    print(f"pulled {r['records']} records of {r['device']} into {args.db}"
          + (f" ({r['corrupt']} corrupt records skipped)" if r["corrupt"] else ""))
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    try:
        check_firmware(args.firmware)
    except TechError as e:
        print(f"pingjia flash: {e}", file=sys.stderr)
        return 2
    cmds = flash_commands(args.port, args.firmware, args.chip, args.baud, not args.no_erase)
    for c in cmds:
        print(" ".join(c[1:] if c[0] == sys.executable else c))
        if not args.dry_run:
            r = subprocess.run(c)
            if r.returncode:
                print(f"pingjia flash: esptool failed ({r.returncode})", file=sys.stderr)
                return 1
    return 0

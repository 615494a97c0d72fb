"""The technician's link to a board (or a virtual device's pty): mpremote without a
reset (`resume`: on the unix port a soft reset ends the process)."""

from __future__ import annotations

import subprocess

from host_tools.device.build import tool
from host_tools.errors import PingjiaError


class TechError(PingjiaError, RuntimeError):
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

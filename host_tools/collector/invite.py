"""The queue system's invitation (design.md sections 2 and 6): `POST /api/v1/invite` with a
window and a ticket opens a rating session on that window's device within a second. The
collector sends the device a signed UDP datagram (firmware/invite.py: why, and the format)
to the address it last synced from, on the port it announced with that sync, and waits
for its signed reply: the queue system learns at once whether the window took it."""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from firmware import frame, invite
from host_tools.errors import PingjiaError

STATUS_NAMES = ("ok", "not_serving", "replayed", "stale", "clock_unknown", "bad_ticket")
ANSWER_S = 1.0  # design.md: within a second
TRIES = 3  # a datagram lost on the way is sent again inside that second


class InviteError(PingjiaError):
    """An invitation that did not open: .status is the HTTP status for the queue system."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# the collector's half of firmware/invite.py's format
def invitation(key: bytes, dev_id: str, counter: int, when: int, ticket: str | None) -> bytes:
    """The collector's signed invitation (bytes)."""
    dev_id = frame.check_id(dev_id)
    t = ticket.encode() if isinstance(ticket, str) else bytes(ticket or b"")
    if len(t) > invite.TICKET_MAX:
        raise ValueError(f"ticket longer than {invite.TICKET_MAX} bytes")
    body = (struct.pack("<2sBB", b"PQ", invite.VERSION, len(dev_id)) + dev_id
            + struct.pack("<IIB", counter, when, len(t)) + t)
    return body + frame.Hmac(key).digest(body)


def parse_reply(data: bytes, key: bytes, counter: int) -> tuple[int, int]:
    """(status, state) of the device's reply to invitation counter; ValueError otherwise."""
    if len(data) != invite.REPLY_SIZE or data[0:2] != b"PR" or data[2] != invite.VERSION:
        raise ValueError("not a reply")
    status, got, state = struct.unpack_from("<BIB", data, 3)
    if got != counter:
        raise ValueError("a reply to another invitation")
    if not frame.same(frame.Hmac(key).digest(data[:9]), data[9:]):
        raise ValueError("reply fails its MAC")
    return status, state


def _addr_key(device: str) -> str:
    return "invite_addr:" + device


def note_address(c: Any, body: bytes, host: str | None, port: str | None) -> None:
    """After a sync the collector took (its MAC checked): where that device's invitations
    go. body is the sync frame (its device id), port the X-Pingjia-Invite header."""
    if not host or not port or not port.isdigit() or len(body) < 4:
        return
    device = bytes(body[4:4 + body[3]]).decode(errors="replace")
    value = f"{host}:{int(port)}"
    key = _addr_key(device)
    if c.db.value("SELECT value FROM meta WHERE key = ?", (key,)) != value:
        with c.db.transaction():
            c.db.execute(c.db.upsert_sql("meta", ("key", "value"), ("key",)), (key, value))


def _next_counter(c: Any, device: str) -> int:
    key = "invite_counter:" + device
    with c.db.transaction():
        n = int(c.db.value("SELECT value FROM meta WHERE key = ?", (key,), 0)) + 1
        c.db.execute(c.db.upsert_sql("meta", ("key", "value"), ("key",)), (key, str(n)))
    return n


def send(c: Any, window: str, ticket: str | None, timeout: float = ANSWER_S) -> dict:
    """Invite on window's device; what the device said. InviteError if it did not open."""
    if not isinstance(window, str) or not window:
        raise InviteError(400, "an invitation needs a window")
    # printable: a NUL would store the rating with no ticket, a line break split the export
    if ticket is not None and (not isinstance(ticket, str) or not ticket.isprintable()
                               or len(ticket.encode()) > invite.TICKET_MAX):
        raise InviteError(400, f"the ticket must be printable text of at most "
                          f"{invite.TICKET_MAX} bytes")
    row = c.db.one("SELECT id FROM devices WHERE win = ? ORDER BY last_seen DESC", (window,))
    if row is None:
        raise InviteError(404, f"no device serves window {window}")
    device = row[0]
    addr = c.db.value("SELECT value FROM meta WHERE key = ?", (_addr_key(device),))
    if addr is None:
        raise InviteError(503, f"window {window}'s device {device} has not synced since it "
                          "could take invitations: its address is not known yet")
    host, _, port = addr.rpartition(":")
    key = c.device_key(device)
    counter = _next_counter(c, device)
    datagram = invitation(key, device, counter, max(c.now(), 0), ticket)
    t0 = time.perf_counter()
    status, state = _exchange(datagram, (host, int(port)), key, counter, timeout)
    ms = (time.perf_counter() - t0) * 1000
    from firmware import record

    state_name = record.STATE_NAMES[state] if state < len(record.STATE_NAMES) else str(state)
    if status != invite.OK:
        name = STATUS_NAMES[status] if status < len(STATUS_NAMES) else str(status)
        why = {"not_serving": f"window {window} is not serving ({state_name})",
               "clock_unknown": f"window {window}'s device does not know the time yet (it "
                                "takes invitations after its next sync)"}.get(name, name)
        raise InviteError(409, f"refused: {why}")
    return {"ok": True, "window": window, "device": device, "ticket": ticket,
            "state": state_name, "ms": round(ms, 1)}


def _exchange(datagram: bytes, addr: tuple[str, int], key: bytes, counter: int,
              timeout: float) -> tuple[int, int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        end = time.monotonic() + timeout
        for i in range(TRIES):
            s.sendto(datagram, addr)
            until = min(end, time.monotonic() + timeout / TRIES) if i < TRIES - 1 else end
            while (left := until - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data, src = s.recvfrom(256)
                except TimeoutError:
                    break
                except OSError:  # nothing listens there (ICMP unreachable): the device is off
                    time.sleep(min(left, 0.05))
                    continue
                try:
                    return parse_reply(data, key, counter)
                except ValueError:
                    continue  # not its reply: wait on
    raise InviteError(504, f"the device at {addr[0]}:{addr[1]} did not answer within "
                      f"{timeout:g} s (off, or away from the network)")

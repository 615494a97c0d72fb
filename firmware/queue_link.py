# The device's end of the queue system's invitation (firmware/invite.py has the format
# and why a datagram): a UDP socket on a port of its own, which the Wi-Fi link announces
# with every sync, polled by one task; each invitation that passes its checks opens a
# rating session with its ticket, exactly as 请评价 does, and is answered with a signed
# reply. Waits are real time (the network's), each bounded; a poll that finds nothing
# allocates nothing.
import asyncio
import select
import socket

from firmware import frame, invite
from firmware.const import const

_POLL_MS = const(20)  # a poll of the socket: the invitation opens within 20 ms of arriving
PORT = const(4110)  # the first port tried; several virtual devices on one host take the next
_PORTS = const(64)


class QueueLink:
    received = taken = refused = forged = 0  # counters, for the status line and tests

    def __init__(self, app):
        self.app = app
        dev = app.device
        self.hm = app.link.hm  # the Wi-Fi link's: one key, one set of HMAC pads
        self.dev_id = frame.check_id(dev["id"])
        self.last = 0  # the last counter taken (a reboot forgets it: freshness covers that)
        self.buf = bytearray(invite.INVITE_MAX + 1)
        self.sock, self.port = _bind()

    async def run(self):
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while True:
            ready = False
            for _ in poller.ipoll(0):  # ipoll: no list, no exception while nothing waits
                ready = True
            if not ready:
                await asyncio.sleep_ms(_POLL_MS)
                continue
            try:
                n, addr = self._recv()
            except OSError:  # gone between the poll and the read
                continue
            self.received += 1
            out = self.take(memoryview(self.buf)[:n])
            if out is not None:
                try:
                    self.sock.sendto(out, addr)
                except OSError:
                    pass  # the collector went: it times out and says so

    def _recv(self):
        data, addr = self.sock.recvfrom(len(self.buf))
        self.buf[: len(data)] = data
        return len(data), addr

    def take(self, data):
        """An invitation's bytes -> the signed reply (None for a forged one)."""
        got = invite.parse_invitation(data, self.hm, self.dev_id)
        if got is None:
            self.forged += 1
            return None
        counter, t, ticket = got
        status = self._check(counter, t, ticket)
        if status == invite.OK:
            self.last = counter
            if self.app.queue_invite(ticket):
                self.taken += 1
            else:
                status = invite.NOT_SERVING
        if status != invite.OK:
            self.refused += 1
        return invite.reply(self.hm, status, counter, self.app.core.state)

    def _check(self, counter, t, ticket):
        if counter <= self.last:
            return invite.REPLAYED
        wall = self.app.clock.wall()
        if wall is None:
            return invite.CLOCK_UNKNOWN  # freshness cannot be told: a replay could pass
        if abs(wall - t) > invite.FRESH_S:
            return invite.STALE
        if ticket is not None and len(ticket.encode()) > invite.TICKET_MAX:
            return invite.BAD_TICKET
        return invite.OK


def _bind():
    """A UDP socket on the first free port from PORT (MicroPython has no getsockname, so
    the port is chosen, not given by the system): (socket, port)."""
    for port in range(PORT, PORT + _PORTS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        return sock, port
    raise OSError("no free UDP port for invitations")

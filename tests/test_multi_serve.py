"""Several `pingjia serve` processes on one PostgreSQL database, as a province runs them
behind any HTTP proxy (README "The path to a province"): devices syncing through both
alternately, and one frame's retry racing its first attempt through the other, store
every rating once; a login made on one is accepted by the other; what a live view polls
(the change mark) and where invitations go are in the database, not in a process."""

from __future__ import annotations

import http.client
import socket
import socketserver
import threading
import time
from urllib.parse import urlencode

import pytest

from firmware import frame, record
from host_tools.collector.store import Collector

EPOCH_2000 = 946684800
DEVICES = 6
FRAMES = 8  # a device's frames, alternating between the two servers
PER = 8  # ratings a frame
LOG_ID = 0x5EED0001


def fw_now() -> int:
    """`pingjia serve` runs on the real clock: the devices' clocks follow it."""
    return int(time.time()) - EPOCH_2000


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None, src: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(src, 0))
    try:
        conn.request(method, path, body, headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class Device:
    """A device's records and signed frames, nonces from its clock (frame.next_nonce)."""

    def __init__(self, dev_id: str, key: bytes, index: int):
        self.id, self.key, self.index = dev_id, key, index
        self.nonce = 0
        self.lock = threading.Lock()  # the race below makes two attempts at once

    def records(self, first: int, n: int) -> bytes:
        t = fw_now() - 3600
        return b"".join(record.pack(s, record.RATING, 1 + (s + self.index) % 4, 0, 1, t + s)
                        for s in range(first, first + n))

    def body(self, first: int, recs: bytes) -> bytes:
        with self.lock:
            self.nonce = frame.next_nonce(fw_now(), self.nonce, b"")
            nonce = self.nonce
        return frame.request(self.key, self.id, LOG_ID, 1, first, recs, 0, 0, nonce)

    def sync(self, port: int, first: int, recs: bytes, tries: int = 20,
             src: str = "127.0.0.1", busy: list | None = None) -> int:
        """Post the records until a server takes them (a 503 is sent again, a new nonce
        each time, as the firmware does); the ack. busy: where a 503 for too many
        requests from one address is noted."""
        for _ in range(tries):
            body = self.body(first, recs)
            s, _h, answer = call(port, "POST", "/api/v1/sync", body, src=src,
                                 headers={"X-Pingjia-Invite": "4210"})
            if s == 200:
                return frame.parse_answer(answer, frame.Hmac(self.key), body[-32:])[0]
            assert s == 503, (s, answer[:120])
            if busy is not None and answer.startswith(b"busy"):
                busy.append(self.id)
            time.sleep(0.1)
        raise AssertionError(f"{self.id}: no server took frame {first} in {tries} tries")


@pytest.fixture
def two_servers(pg_url, pingjia_serve, roster_csv):
    """Two `pingjia serve` processes on one PostgreSQL database with devices, a roster
    and a viewer: (ports, devices, viewer token)."""
    c = Collector(pg_url)
    try:
        c.import_roster(roster_csv)
        devs = [Device(f"ms-{i}", bytes.fromhex(c.add_device(f"ms-{i}", f"B0{1 + i % 2}")), i)
                for i in range(DEVICES)]
        token = c.users.add("viewer-1", "viewer")
    finally:
        c.db.close()
    ports = [pingjia_serve(pg_url)[1] for _ in range(2)]
    return ports, devs, token


def test_devices_syncing_through_both_store_every_rating_once(two_servers, pg_url):
    ports, devs, _token = two_servers
    errors: list[BaseException] = []

    def run(jobs: list[tuple]) -> None:
        def go(fn, *args) -> None:
            try:
                fn(*args)
            except BaseException as e:  # reported below, with the device
                errors.append(e)

        threads = [threading.Thread(target=go, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors

    # a device's first frame (a new log) whose answer was slow: its retry, through the
    # proxy's other server, races the first attempt; both are taken, the records once
    race: dict[tuple[str, int], int] = {}

    def attempt(d: Device, port: int) -> None:
        race[d.id, port] = d.sync(port, 1, d.records(1, PER))

    run([(attempt, d, p) for d in devs for p in ports])
    assert set(race.values()) == {PER}, race

    acks: dict[str, list[int]] = {d.id: [] for d in devs}

    def day(d: Device) -> None:
        for f in range(1, FRAMES + 1):  # each frame through the other server than the last
            first = 1 + f * PER
            acks[d.id].append(d.sync(ports[(f + d.index) % 2], first, d.records(first, PER)))

    run([(day, d) for d in devs])
    assert all(acks[d.id] == [PER * (f + 1) for f in range(1, FRAMES + 1)] for d in devs), acks

    c = Collector(pg_url)
    try:
        want = (FRAMES + 1) * PER
        for d in devs:
            seqs = [r[0] for r in c.db.all("SELECT seq FROM records WHERE device = ? "
                                           "ORDER BY seq", (d.id,))]
            assert seqs == list(range(1, want + 1)), d.id
            assert c.db.value("SELECT COUNT(*) FROM events WHERE device = ? AND kind = "
                              "'rating'", (d.id,)) == want
        # the mark a live view polls moved with every stored frame, whichever server took it
        assert c.change_mark() >= DEVICES * (FRAMES + 1)
    finally:
        c.db.close()


def test_a_login_on_one_server_is_accepted_by_the_other(two_servers):
    (a, b), _devs, token = two_servers
    s, h, _ = call(a, "POST", "/login", urlencode({"name": "viewer-1", "token": token,
                                                   "next": "/"}).encode(),
                   {"Content-Type": "application/x-www-form-urlencoded"})
    assert s == 303, s
    jar = {"Cookie": h["set-cookie"].split(";")[0]}
    s, _h, page = call(b, "GET", "/", headers=jar)  # signed with the database's secret
    assert s == 200 and "viewer-1" in page.decode()
    assert call(b, "GET", "/api/v1/report", headers=jar)[0] == 200
    s, _h, _ = call(b, "POST", "/logout", headers=jar)
    assert s == 303
    # a forged cookie is refused by both
    for port in (a, b):
        s, h, _ = call(port, "GET", "/", headers={"Cookie": "pingjia=forged.value.sig"})
        assert s == 303 and h["location"].startswith("/login")


class RoundRobinProxy(socketserver.ThreadingTCPServer):
    """Any HTTP proxy, as small as one gets: each request (head and Content-Length body)
    to the next backend in turn with X-Forwarded-For, the answer back, one request a
    connection. Every socket has a deadline."""

    daemon_threads = True
    request_queue_size = 128  # the devices come all at once

    def __init__(self, backends: list[int]):
        self.backends, self.turn, self.lock = backends, 0, threading.Lock()
        super().__init__(("127.0.0.1", 0), _Relay)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def next_backend(self) -> int:
        with self.lock:
            self.turn += 1
            return self.backends[self.turn % len(self.backends)]


class _Relay(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next((int(x.split(b":", 1)[1]) for x in lines[1:]
                       if x.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            body += chunk
        keep = [x for x in lines[1:] if not x.lower().startswith((b"connection:",
                                                                   b"x-forwarded-for:"))]
        out = b"\r\n".join([lines[0], *keep, b"X-Forwarded-For: "
                             + self.client_address[0].encode(), b"Connection: close"])
        with socket.create_connection(("127.0.0.1", self.server.next_backend()),
                                      timeout=30) as b:
            b.sendall(out + b"\r\n\r\n" + body)
            while chunk := b.recv(65536):
                self.request.sendall(chunk)


def test_behind_a_proxy_devices_keep_their_own_address(pg_url, pingjia_serve):
    """`pingjia serve --proxy 127.0.0.1` twice behind one proxy: 48 devices syncing at
    once through it are not capped as the proxy's one address (8 requests at once), and
    each device's invitation address is its own, not the proxy's."""
    n = 48
    c = Collector(pg_url)
    try:
        devs = [Device(f"px-{i}", bytes.fromhex(c.add_device(f"px-{i}", f"P{i:02d}")), i)
                for i in range(n)]
    finally:
        c.db.close()
    ports = [pingjia_serve(pg_url, None, "--proxy", "127.0.0.1")[1] for _ in range(2)]
    proxy = RoundRobinProxy(ports)
    busy: list[str] = []
    errors: list[BaseException] = []
    go = threading.Barrier(n, timeout=60)

    def device(d: Device) -> None:
        try:
            go.wait()  # all at once
            for f in range(3):
                first = 1 + f * PER
                d.sync(proxy.port, first, d.records(first, PER), src=f"127.0.9.{1 + d.index}",
                       busy=busy)
        except BaseException as e:
            errors.append(e)

    try:
        threads = [threading.Thread(target=device, args=(d,)) for d in devs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert not errors, errors
    assert busy == []  # no device was counted as the proxy
    c = Collector(pg_url)
    try:
        assert c.db.value("SELECT COUNT(*) FROM events WHERE kind = 'rating'") == n * 3 * PER
        addrs = dict(c.db.all("SELECT key, value FROM meta WHERE key LIKE 'invite_addr:%'"))
    finally:
        c.db.close()
    assert addrs == {f"invite_addr:{d.id}": f"127.0.9.{1 + d.index}:4210" for d in devs}


def test_the_change_mark_is_one_number_over_its_rows(db_url):
    """A device's changes move its slot's row of the mark, the rest the first row: the
    mark a live view polls counts every one of them."""
    c = Collector(db_url)
    try:
        before = c.change_mark()
        with c.db.transaction():
            for key in ("", "ms-0", "ms-1", "ms-2", "ms-2"):
                c.note_change(key)
        assert c.change_mark() == before + 5
        rows = c.db.value("SELECT COUNT(*) FROM meta WHERE key = 'change_mark' "
                          "OR key LIKE 'change_mark:%'")
        assert rows > 1
    finally:
        c.db.close()

"""Webhooks (host_tools/collector/webhooks.py): every alert of a hall reaches each of its
webhooks once, signed, through a receiver on 127.0.0.1 that is down for a while and then
up; retries spaced by backoff on the collector's clock (moved by the test, no real
waits); a URL that does not answer has a clear status and loses nothing; bad URLs and
users without the admin role change nothing."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from firmware.clock import EPOCH_UNIX
from host_tools.collector import alerts, webhooks
from host_tools.collector.db import StorageUnavailable
from host_tools.collector.server import ServerThread
from host_tools.collector.store import Collector, CollectorError

TIMEOUT_S = 1.0  # a POST the test waits for; nothing in the tests waits longer


class Receiver:
    """An HTTP receiver on 127.0.0.1 that keeps every POST; answers `status`."""

    def __init__(self, port: int = 0, status: int = 200):
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                me.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(me.status)
                if me.status in (301, 302, 307):
                    self.send_header("Location", "http://169.254.169.254/latest")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            request_queue_size = 128  # http.server's 5 drops a crowd of workers' connects

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self) -> list[str]:
        return [h["x-pingjia-delivery"] for h, _b in self.got]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def start(port: int = 0, status: int = 200) -> Receiver:
        made.append(Receiver(port, status))
        return made[-1]

    yield start
    for r in made:
        r.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_ratings(c: Collector, d, n: int, t: int) -> list[int]:
    """n 不满意 stored and scanned: the ids of their alerts."""
    first = d.seq + 1
    for i in range(n):
        d.rating(4, t + i)
    d.send(first=first)
    return sorted(alerts.scan_new(c))


def test_down_then_up_each_alert_once_signed_retries_spaced_by_backoff(
        office, clock, device_log, t0, receivers):
    port = free_port()  # nothing listens there yet: the receiver is down
    hook = webhooks.add(office, "main", f"http://127.0.0.1:{port}/hook")
    d = device_log(office)
    ids = bad_ratings(office, d, 3, t0)
    # the bad_rate alert needs 5 ratings: three 不满意 raise three alerts
    assert len(ids) == 3
    w = webhooks.Deliverer(office, timeout=TIMEOUT_S, rand=lambda: 1.0)
    tries = []
    for _ in range(4):  # down: refused four times, each later than the one before
        assert w.run_once() == 3
        row = office.db.one("SELECT attempts, last_try, next_at, state, last_error FROM outbox "
                            "WHERE alert = ?", (ids[0],))
        tries.append(row)
        assert w.run_once() == 0  # not due yet
        clock.t = row[2]
    assert [r[2] - r[1] for r in tries] == [10, 20, 40, 80]  # doubling (jitter 1.0 here)
    assert {r[3] for r in tries} == {"pending"} and "Refused" in tries[-1][4]
    (shown,) = webhooks.listing(office)
    assert (shown["pending"], shown["delivered"], shown["failed"]) == (3, 0, 0)
    assert "Refused" in shown["last_error"] and shown["next_try"]
    r = receivers(port)  # up
    assert w.run_once() == 3
    sent_at = clock.t + EPOCH_UNIX
    assert sorted(r.ids()) == sorted(f"{a}-{hook['id']}" for a in ids)
    clock.t += 3600
    assert w.run_once() == 0 and office.again().db.value(
        "SELECT COUNT(*) FROM outbox WHERE state = 'done'") == 3
    assert len(r.got) == 3  # once each
    for headers, body in r.got:
        assert webhooks.verify(hook["secret"], headers, body, sent_at)
        assert not webhooks.verify("whsec_other", headers, body, sent_at)
        assert not webhooks.verify(hook["secret"], headers, body + b" ", sent_at)
        assert not webhooks.verify(hook["secret"], headers, body, sent_at + 3600)  # stale
        sent = json.loads(body)
        assert sent["id"] == headers["x-pingjia-delivery"]
        assert sent["alert"]["text"] == "B01 窗口收到一条不满意评价"
    (shown,) = webhooks.listing(office)
    assert (shown["pending"], shown["delivered"], shown["failed"]) == (0, 3, 0)


def test_jitter_stays_within_half_and_whole_and_the_delay_is_capped():
    assert [webhooks.backoff(n, lambda: 0.0) for n in (1, 2, 3)] == [5, 10, 20]
    assert [webhooks.backoff(n, lambda: 1.0) for n in (1, 2, 3)] == [10, 20, 40]
    assert webhooks.backoff(30, lambda: 1.0) == webhooks.CAP_S


def test_a_url_that_never_answers_is_given_up_after_its_attempts(
        office, clock, device_log, t0):
    # a listening socket that never accepts: connect works, no answer ever comes
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        webhooks.add(office, "main", f"http://127.0.0.1:{silent.getsockname()[1]}/")
        d = device_log(office)
        (aid,) = bad_ratings(office, d, 1, t0)
        w = webhooks.Deliverer(office, timeout=0.2, rand=lambda: 0.5)
        for n in range(1, webhooks.MAX_ATTEMPTS + 1):  # bounded
            assert w.run_once() == 1
            state, attempts, err, next_at = office.db.one(
                "SELECT state, attempts, last_error, next_at FROM outbox WHERE alert = ?",
                (aid,))
            assert attempts == n and err == "no answer within 0.2 s"
            if state == "failed":
                break
            clock.t = next_at
        assert (state, attempts) == ("failed", webhooks.MAX_ATTEMPTS)
        clock.t += 86400
        assert w.run_once() == 0  # failed stays failed, and is shown
        (shown,) = webhooks.listing(office)
        assert (shown["failed"], shown["pending"]) == (1, 0)
        assert shown["last_error"] == "no answer within 0.2 s" and shown["next_try"] is None
    finally:
        silent.close()


def test_a_delivery_older_than_a_day_is_given_up(office, clock, device_log, t0):
    webhooks.add(office, "main", f"http://127.0.0.1:{free_port()}/")
    d = device_log(office)
    bad_ratings(office, d, 1, t0)
    w = webhooks.Deliverer(office, timeout=TIMEOUT_S, rand=lambda: 1.0)
    assert w.run_once() == 1
    clock.t += webhooks.GIVE_UP_S
    assert w.run_once() == 1
    assert office.db.value("SELECT state FROM outbox") == "failed"


def test_errors_and_redirects_are_retried_never_followed(office, clock, device_log, t0,
                                                         receivers):
    r = receivers(status=500)
    webhooks.add(office, "main", f"http://127.0.0.1:{r.port}/x?token=1")
    d = device_log(office)
    bad_ratings(office, d, 1, t0)
    w = webhooks.Deliverer(office, timeout=TIMEOUT_S, rand=lambda: 1.0)
    w.run_once()
    assert office.db.value("SELECT last_error FROM outbox") == "HTTP 500"
    r.status = 302  # to the metadata service: not followed
    clock.t += 10
    w.run_once()
    assert office.db.value("SELECT last_error FROM outbox") == "HTTP 302"
    assert len(r.got) == 2 and office.db.value("SELECT state FROM outbox") == "pending"
    r.status = 204
    clock.t += 20
    w.run_once()
    assert office.db.value("SELECT state FROM outbox") == "done" and len(r.got) == 3


def test_two_workers_on_one_database_send_each_once(office, clock, device_log, t0, receivers):
    r = receivers()
    webhooks.add(office, "main", f"http://127.0.0.1:{r.port}/a")
    webhooks.add(office, "main", f"http://127.0.0.1:{r.port}/b")
    d = device_log(office)
    ids = bad_ratings(office, d, 20, t0)
    assert len(ids) == 21  # twenty 不满意 and a 差评率
    workers = [webhooks.Deliverer(office.again(), timeout=10) for _ in range(3)]
    start = threading.Barrier(len(workers))

    def run(w: webhooks.Deliverer) -> None:
        start.wait(timeout=30)
        for _ in range(200):  # bounded: until nothing is due (SQLite may be busy a moment)
            try:
                if w.run_once() == 0 and not office.db.value(
                        "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"):
                    return
            except StorageUnavailable:
                threading.Event().wait(0.05)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(r.got) == 42 and len(set(r.ids())) == 42  # each alert, each webhook, once


def test_a_hall_gets_its_own_alerts_and_a_removed_webhook_none(office, clock, device_log, t0,
                                                              receivers):
    r = receivers()
    east = device_log(office, "x-1", "C01")
    office.db.execute("UPDATE devices SET hall = 'east' WHERE id = 'x-1'")
    main_hook = webhooks.add(office, "main", f"http://127.0.0.1:{r.port}/main")
    east_hook = webhooks.add(office, "east", f"http://127.0.0.1:{r.port}/east")
    d = device_log(office)
    (main_alert,) = bad_ratings(office, d, 1, t0)
    (east_alert,) = bad_ratings(office, east, 1, t0)
    webhooks.remove(office, east_hook["id"])  # before it was sent: cancelled
    w = webhooks.Deliverer(office, timeout=TIMEOUT_S)
    assert w.run_once() == 1
    assert r.ids() == [f"{main_alert}-{main_hook['id']}"]
    assert [h["id"] for h in webhooks.listing(office)] == [main_hook["id"]]
    assert office.db.value("SELECT state FROM outbox WHERE alert = ?", (east_alert,)) == \
        "cancelled"
    with pytest.raises(alerts.NotFound):
        webhooks.remove(office, east_hook["id"])


@pytest.mark.parametrize("url", [
    "ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1:70/", "127.0.0.1:8080/x",
    "http://", "http://169.254.169.254/latest/meta-data", "http://[fe80::1]/",
    "http://0.0.0.0:80/", "http://user:pw@127.0.0.1/", "http://127.0.0.1:99999/",
    "http://127.0.0.1/a b", "https://example.org/\u202e"])
def test_bad_urls_are_refused_and_nothing_is_added(collector, url):
    with pytest.raises(CollectorError):
        webhooks.add(collector, "main", url)
    assert webhooks.listing(collector) == []


def test_names_are_resolved_and_checked_at_delivery(receivers):
    r = receivers()
    out = webhooks.post(f"http://localhost:{r.port}/by-name", b"{}", {}, TIMEOUT_S)
    assert out.ok and len(r.got) == 1  # localhost: loopback, allowed
    assert webhooks._refused_address("169.254.169.254")  # what a name may not resolve to
    assert webhooks._refused_address("fe80::1%eth0")
    assert webhooks._refused_address("10.0.0.5") is None  # the hall's LAN


def test_unknown_halls_are_refused(collector):
    with pytest.raises(CollectorError, match="no hall"):
        webhooks.add(collector, "nowhere", "http://127.0.0.1:9/")
    with pytest.raises(CollectorError, match="no hall"):
        webhooks.listing(collector, "nowhere")


# ---- over HTTP and the CLI ------------------------------------------------------------------
def call(port: int, method: str, path: str, token: str | None, body: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request(method, path, json.dumps(body).encode() if body is not None else None, h)
        r = conn.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data.startswith(b"{") else data.decode()
    finally:
        conn.close()


def test_the_api_is_for_admins_only(office):
    tokens = {r: office.users.add(f"{r}-1", r) for r in ("viewer", "admin")}
    with ServerThread(office) as srv:
        url = {"hall": "main", "url": "https://hooks.example.org/pingjia"}
        for method, path, body in (("GET", "/api/v1/webhooks", None),
                                   ("POST", "/api/v1/webhooks", url)):
            s, text = call(srv.port, method, path, tokens["viewer"], body)
            assert s == 403 and "may not" in text
        assert webhooks.listing(office) == []
        s, got = call(srv.port, "POST", "/api/v1/webhooks", tokens["admin"],
                      {"hall": "main", "url": "file:///etc/passwd"})
        assert s == 400 and "only http:// and https://" in got["error"]
        s, got = call(srv.port, "POST", "/api/v1/webhooks", tokens["admin"], {"hall": "main"})
        assert s == 400 and got["error"]
        s, got = call(srv.port, "POST", "/api/v1/webhooks", tokens["admin"], url)
        assert s == 200 and got["secret"].startswith("whsec_")
        hook = got["id"]
        s, got = call(srv.port, "GET", "/api/v1/webhooks", tokens["admin"])
        assert [h["url"] for h in got["webhooks"]] == [url["url"]]
        assert "secret" not in got["webhooks"][0]  # shown once, at the add
        s, _t = call(srv.port, "POST", f"/api/v1/webhooks/{hook}/remove", tokens["viewer"])
        assert s == 403 and len(webhooks.listing(office)) == 1
        assert call(srv.port, "POST", f"/api/v1/webhooks/{hook}/remove", tokens["admin"])[0] == 200
        assert call(srv.port, "POST", f"/api/v1/webhooks/{hook}/remove", tokens["admin"])[0] == 404
        assert webhooks.listing(office) == []


def test_the_cli(cli, tmp_path):
    db = str(tmp_path / "cli.db")
    r = cli("webhook", "add", "--hall", "main", "http://127.0.0.1:9/hook", "--db", db)
    assert r.returncode == 0 and "whsec_" in r.stdout, r.stderr
    r = cli("webhook", "add", "--hall", "main", "ftp://127.0.0.1/x", "--db", db)
    assert r.returncode == 2 and "only http://" in r.stderr and "Traceback" not in r.stderr
    r = cli("webhook", "list", "--db", db)
    assert "http://127.0.0.1:9/hook" in r.stdout and "whsec_" not in r.stdout
    assert "delivered 0, pending 0, failed 0" in r.stdout
    assert cli("webhook", "remove", "1", "--db", db).returncode == 0
    r = cli("webhook", "remove", "1", "--db", db)
    assert r.returncode == 2 and "no webhook 1" in r.stderr


def test_pingjia_serve_raises_after_a_sync_and_delivers(db_url, serve_proc, receivers):
    """The whole path in a real `pingjia serve`: a device's frame over HTTP, the alert
    raised off the sync's path, delivered to the hall's webhook, listed by the API."""
    import time

    from firmware import frame, record
    from host_tools.collector.store import system_clock

    r = receivers()
    c = Collector(db_url)
    try:
        key = bytes.fromhex(c.add_device("e2e-1", "B07"))
        hook = webhooks.add(c, "main", f"http://127.0.0.1:{r.port}/hook")
        viewer = c.users.add("viewer-1", "viewer")
    finally:
        c.db.close()
    srv = serve_proc(db_url)
    now = int(system_clock())
    body = frame.request(key, "e2e-1", 0x5EED0002, 1, 1,
                         bytes(record.pack(1, record.RATING, 4, 0, 0, now)), 0, 0, now)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("POST", "/api/v1/sync", body)
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    for _ in range(300):  # bounded: the watcher is poked, the deliverer then
        if r.got:
            break
        time.sleep(0.05)
    ((headers, sent),) = r.got
    assert webhooks.verify(hook["secret"], headers, sent, time.time())
    assert json.loads(sent)["alert"]["text"] == "B07 窗口收到一条不满意评价"
    s, got = call(srv.port, "GET", "/api/v1/alerts", viewer)
    assert s == 200 and [a["window"] for a in got["alerts"]] == ["B07"]

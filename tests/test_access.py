"""Access (design.md section 6): every route but the device endpoint needs a role;
tokens are stored hashed; the dashboard's login keeps a signed session cookie (HttpOnly,
SameSite, an expiry the server enforces); a revoked user is out at the next request;
`pingjia serve` listens on 127.0.0.1 unless --host says otherwise, and then not without
an admin; `pingjia device rekey|revoke`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from base64 import b64encode
from pathlib import Path

import itsdangerous
import pytest
from starlette.routing import Route

from firmware import frame, record
from host_tools.collector.server import SYNC_PATH, create_app

ROOT = Path(__file__).resolve().parents[1]
# the device endpoint, the login itself, and the dashboard's code and styles (no data)
OPEN = {SYNC_PATH, "/login", "/logout", "/static/{path:path}"}
# a request each guarded route takes from a user allowed to make it
BODIES = {
    ("POST", "/api/v1/devices"): json.dumps({"id": "acc-9", "window": "B09"}).encode(),
    ("POST", "/api/v1/devices/{id}/rekey"): b"{}",
    ("POST", "/api/v1/devices/{id}/revoke"): b"{}",
    ("POST", "/api/v1/settings"): json.dumps({"key": "invite_s", "value": 20}).encode(),
    ("POST", "/api/v1/roster"): (ROOT / "examples" / "staff.csv").read_bytes(),
    ("POST", "/api/v1/invite"): json.dumps({"window": "B09", "ticket": "A1"}).encode(),
    ("POST", "/api/v1/cases/{case_id}"): json.dumps({"action": "note", "text": "x"}).encode(),
    ("POST", "/api/v1/alerts/settings"): json.dumps({"key": "silent_h", "value": 48}).encode(),
    ("POST", "/api/v1/webhooks"): json.dumps({"hall": "main",
                                             "url": "http://127.0.0.1:9/"}).encode(),
}


def made_for(served, path: str, dev: str) -> str:
    """The id a route's {id} names: an alert of its own, a webhook, else a new device."""
    from host_tools.collector import alerts, webhooks

    c = served.collector
    if path.startswith("/api/v1/alerts/"):
        with c.db.transaction():
            return str(alerts.raise_alert(c, alerts.Finding(
                "dissatisfied", f"test:{dev}", "main", "B01", None, "B01 窗口收到一条不满意评价")))
    if path.startswith("/api/v1/webhooks/"):
        return str(webhooks.add(c, "main", "http://127.0.0.1:9/")["id"])
    c.add_device(dev, "B01")
    return dev


def guarded_routes(collector) -> list[tuple[str, str, str]]:
    """(method, path, scope) of every route of the app; a route without a guard fails."""
    out = []
    for r in create_app(collector).routes:
        assert isinstance(r, Route)
        if r.path in OPEN:
            continue
        scope = getattr(r.endpoint, "scope_needed", None)
        assert scope in ("viewer", "admin", "queue"), f"{r.path} has no role check"
        for m in sorted(r.methods - {"HEAD"}):
            out.append((m, r.path, scope))
    return out


def request_for(served, method: str, path: str, token: str | None, made: list[str]):
    body = BODIES.get((method, path))
    if "{id}" in path:  # a device of its own for each call: rekey and revoke change it
        dev = f"ac{len(made)}"
        made.append(dev)
        path = path.replace("{id}", made_for(served, path, dev))
    if "{case_id}" in path:  # a 差评 of its own for each call: its case exists
        dev = f"ac{len(made)}"
        made.append(dev)
        key = bytes.fromhex(served.collector.add_device(dev, "B01"))
        served.collector.ingest(frame.request(key, dev, 7, 1, 1, record.pack(
            1, record.RATING, 4, 0, 0, served.t), nonce=1))
        path = path.replace("{case_id}", f"{dev}-0-1")
    query = "?day=2026-11-23" if method == "GET" else ""
    if path == "/api/v1/live":  # the live stream: its first event, then its end
        query += "&max_s=0"
    return served.call(method, path + query, body, token)


def test_every_route_needs_its_role(served):
    routes = guarded_routes(served.collector)
    assert len(routes) >= 12
    made: list[str] = []
    for method, path, scope in routes:
        status, headers, body = request_for(served, method, path, None, made)
        if path == "/":  # the dashboard sends a person to the login page
            assert status == 303 and headers["location"][0].startswith("/login"), path
        else:
            assert status == 401 and body.startswith(b"refused: this needs a token"), \
                (method, path, status, body)
            assert headers["www-authenticate"] == ["Bearer"]
        for role, token in served.tokens.items():
            allowed = scope in {"viewer": ("viewer",), "admin": ("viewer", "admin"),
                                "queue": ("queue",)}[role]
            status, _h, body = request_for(served, method, path, token, made)
            if allowed:  # the invitation is past the door: no device serves that window
                assert status == 200 or path == "/api/v1/invite" and status == 404, \
                    (role, method, path, status, body)
            else:
                assert status == 403 and f"role {role} may not".encode() in body, \
                    (role, method, path, status, body)
    # a wrong token, a malformed header: 401 with the reason
    s, _h, body = served.call("GET", "/api/v1/report", token="pj_00000000_nope")
    assert s == 401 and b"not valid" in body
    s, _h, body = served.call("GET", "/api/v1/report", headers={"Authorization": "Basic eA=="})
    assert s == 401 and b"Bearer" in body


def test_the_device_endpoint_needs_no_user_but_its_key(served):
    c = served.collector
    key = bytes.fromhex(c.add_device("acc-1", "B01"))
    body = frame.request(key, "acc-1", 7, 1, 1, record.pack(1, record.RATING, 1, 0, 0, served.t), nonce=7)
    assert served.call("POST", SYNC_PATH, body)[0] == 200
    # a user's token changes nothing for a device frame: the key is what counts
    forged = frame.request(b"x" * 16, "acc-1", 7, 1, 2, record.pack(2, record.RATING, 1, 0, 0, served.t))
    s, _h, text = served.call("POST", SYNC_PATH, forged, served.tokens["admin"])
    assert s == 401 and text.startswith(b"refused: bad_mac")


def test_tokens_are_stored_hashed_and_revoked_at_the_next_request(served):
    c = served.collector
    token = served.tokens["viewer"]
    rows = c.db.all("SELECT name, token_hash FROM users")
    assert rows and all(h.startswith("$argon2id$") for _n, h in rows)
    dump = "".join(str(r) for t in ("users", "meta") for r in c.db.all(f"SELECT * FROM {t}"))
    assert token not in dump and token.split("_", 2)[2] not in dump
    assert served.call("GET", "/api/v1/report", token=token)[0] == 200
    c.users.revoke("viewer-1")
    s, _h, body = served.call("GET", "/api/v1/report", token=token)
    assert s == 401 and b"revoked" in body
    again = c.users.add("viewer-1", "viewer")  # a new token for the same name
    assert served.call("GET", "/api/v1/report", token=token)[0] == 401
    assert served.call("GET", "/api/v1/report", token=again)[0] == 200


def _login(served, name: str, token: str):
    from urllib.parse import urlencode

    return served.call("POST", "/login", urlencode({"name": name, "token": token,
                                                    "next": "/"}).encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_login_page_and_session_cookie(served):
    s, _h, page = served.call("GET", "/login")
    assert s == 200 and "令牌" in page.decode()
    s, _h, page = _login(served, "viewer-1", "pj_00000000_wrong")
    assert s == 401 and "不对" in page.decode()
    s, h, _b = _login(served, "viewer-1", served.tokens["viewer"])
    assert s == 303 and h["location"] == ["/"]
    [cookie] = h["set-cookie"]
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "max-age=28800" in flags
    jar = cookie.split(";")[0]
    s, _h, page = served.call("GET", "/?day=2026-11-23", headers={"Cookie": jar})
    assert s == 200 and "窗口服务评价" in page.decode() and "viewer-1" in page.decode()
    s, _h, _b = served.call("GET", "/api/v1/report", headers={"Cookie": jar})
    assert s == 200  # the session also reads the JSON API, as the viewer it is
    s, _h, _b = served.call("POST", "/api/v1/settings", b'{"key": "invite_s", "value": 20}',
                            headers={"Cookie": jar})
    assert s == 403
    # a cookie signed long ago: the server itself refuses it past its 8 hours
    secret = served.collector.session_secret()

    class Then(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 9 * 3600

    old = Then(secret).sign(b64encode(json.dumps(
        {"user": "viewer-1", "tid": served.tokens["viewer"].split("_")[1]}).encode()))
    s, h, _b = served.call("GET", "/", headers={"Cookie": "pingjia=" + old.decode()})
    assert s == 303 and h["location"][0].startswith("/login")
    # a cookie of the same age signed now works: it was the age that counted
    fresh = itsdangerous.TimestampSigner(secret).sign(b64encode(json.dumps(
        {"user": "viewer-1", "tid": served.tokens["viewer"].split("_")[1]}).encode()))
    assert served.call("GET", "/", headers={"Cookie": "pingjia=" + fresh.decode()})[0] == 200
    # revoked: the session is out at the next request
    served.collector.users.revoke("viewer-1")
    s, h, _b = served.call("GET", "/", headers={"Cookie": jar})
    assert s == 303 and h["location"][0].startswith("/login")
    # logout clears the cookie
    s, h, _b = served.call("POST", "/logout", headers={"Cookie": jar})
    assert s == 303


def test_queue_and_viewer_cannot_log_in_as_someone_else(served):
    s, _h, _b = _login(served, "admin-1", served.tokens["viewer"])  # right token, wrong name
    assert s == 401
    s, _h, _b = _login(served, "queue-1", served.tokens["queue"])  # the queue reads nothing
    assert s == 401


def test_wrong_tokens_are_throttled(served):
    for _ in range(10):
        assert served.call("GET", "/api/v1/report", token="pj_0badc0de_x")[0] == 401
    s, h, body = served.call("GET", "/api/v1/report", token="pj_0badc0de_x")
    assert s == 429 and h["retry-after"] == ["60"] and b"wait a minute" in body


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "host_tools.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, host: str = "127.0.0.1") -> None:
    for _ in range(200):  # bounded: until it accepts connections
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("pingjia serve did not start")


def test_user_commands(db_url):
    db = db_url
    r = cli("user", "add", "王芳", "--role", "admin", "--db", db)
    assert r.returncode == 0 and r.stdout.startswith("pj_") and "shown once" in r.stderr
    assert cli("user", "add", "王芳", "--role", "viewer", "--db", db).returncode == 2
    r = cli("user", "add", "bad name", "--role", "viewer", "--db", db)
    assert r.returncode == 2 and "no spaces" in r.stderr
    r = cli("user", "add", "x", "--role", "root", "--db", db)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    assert cli("user", "add", "q", "--role", "queue", "--db", db).returncode == 0
    r = cli("user", "list", "--db", db)
    assert "王芳" in r.stdout and "queue" in r.stdout and r.stdout.count("\n") == 3
    assert cli("user", "revoke", "q", "--db", db).returncode == 0
    r = cli("user", "revoke", "q", "--db", db)
    assert r.returncode == 2 and "no user q" in r.stderr


def test_serve_listens_on_this_machine_unless_told(db_url):
    db = db_url
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "serve", "--db", db,
                          "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(port)
        with pytest.raises(OSError):  # another loopback address: nothing listens there
            socket.create_connection(("127.0.0.2", port), timeout=2).close()
    finally:
        p.terminate()
        p.wait(timeout=30)
    # on the network with no admin: refused before it listens
    r = cli("serve", "--db", db, "--host", "0.0.0.0", "--port", str(port))
    assert r.returncode == 2 and "no admin user" in r.stderr
    assert cli("user", "add", "root", "--role", "admin", "--db", db).returncode == 0
    p = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "serve", "--db", db,
                          "--host", "0.0.0.0", "--port", str(port)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(port)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /api/v1/report HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 401")  # up, and still asking who
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_device_rekey_and_revoke(served):
    c = served.collector
    old = bytes.fromhex(c.add_device("rk-1", "B01"))
    body = frame.request(old, "rk-1", 7, 1, 1, record.pack(1, record.RATING, 2, 0, 0, served.t), nonce=100)
    assert served.call("POST", SYNC_PATH, body)[0] == 200
    db = c.db.url
    r = cli("device", "rekey", "rk-1", "--db", db)
    assert r.returncode == 0
    new = bytes.fromhex(r.stdout.strip())
    assert new != old and len(new) == 16
    stale = frame.request(old, "rk-1", 7, 1, 2, record.pack(2, record.RATING, 2, 0, 0, served.t), nonce=101)
    s, _h, text = served.call("POST", SYNC_PATH, stale)  # the server sees it at once
    assert s == 401 and b"bad_mac" in text
    fresh = frame.request(new, "rk-1", 7, 1, 2, record.pack(2, record.RATING, 2, 0, 0, served.t), nonce=102)
    assert served.call("POST", SYNC_PATH, fresh)[0] == 200
    r = cli("device", "revoke", "rk-1", "--db", db)
    assert r.returncode == 0 and "revoked" in r.stdout
    later = frame.request(new, "rk-1", 7, 1, 3, record.pack(3, record.RATING, 2, 0, 0, served.t), nonce=103)
    s, _h, text = served.call("POST", SYNC_PATH, later)
    assert s == 403 and text.startswith(b"refused: revoked"), text
    assert "revoked" in cli("device", "list", "--db", db).stdout
    # its ratings stay in the reports
    assert c.db.value("SELECT COUNT(*) FROM events WHERE device = 'rk-1'") == 2
    assert cli("device", "rekey", "nobody", "--db", db).returncode == 2
    assert cli("device", "revoke", "nobody", "--db", db).returncode == 2


def test_database_is_owner_only(tmp_path):
    from host_tools.collector.store import Collector

    old = os.umask(0o022)
    try:
        c = Collector(str(tmp_path / "o.db"))
        c.add_device("own-1", "B01")  # a write: the -wal and -shm exist now
        for name in ("o.db", "o.db-wal", "o.db-shm"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
        c.db.close()
        (tmp_path / "o.db").chmod(0o644)  # found readable by others: tightened
        Collector(str(tmp_path / "o.db")).db.close()
        assert (tmp_path / "o.db").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)

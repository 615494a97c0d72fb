"""The queue system's invitation: `POST /api/v1/invite` on a `pingjia serve` reaches the
window's virtual device (firmware/queue_link.py) as a signed datagram, opens a rating
session with the ticket, and the answer says whether the window took it."""

import json
import socket
import time
import urllib.error
import urllib.request

from firmware import invite
from host_tools.collector import invite as invites
from host_tools.collector.db import Database

TOKENS = {}  # port -> the queue system's token on that server


def _post(port, body, timeout=5, token=None):
    token = TOKENS.get(port) if token is None else token
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/invite", method="POST",
                                 data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            code, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        code, text = e.code, e.read()
    try:
        answer = json.loads(text)
    except ValueError:  # the access layer's refusals are one line of text
        answer = {"ok": False, "error": text.decode()}
    return code, answer, time.perf_counter() - t


def _served(serial_sim, pingjia_serve, db_url, cli):
    db = db_url
    tokens = {}
    for role in ("admin", "queue", "viewer"):
        p = cli("user", "add", f"{role}-1", "--role", role, "--db", str(db))
        assert p.returncode == 0, p.stderr
        tokens[role] = p.stdout.split()[0]
    _proc, port = pingjia_serve(db)
    TOKENS[port] = tokens["queue"]
    TOKENS["viewer", port] = tokens["viewer"]
    sim = serial_sim(db, "--collector", f"http://127.0.0.1:{port}", serial=False)
    out = sim.send("badge 0A1B2C3D", "sync")
    assert out[1].startswith("ok: sent"), out  # the collector learns where the device is
    return db, port, sim


def test_an_invitation_becomes_the_ratings_ticket(serial_sim, pingjia_serve, cli, db_url):
    db, port, sim = _served(serial_sim, pingjia_serve, db_url, cli)
    code, body, _ = _post(port, {"window": "B01", "ticket": "Q-0041"}, token="")
    assert code == 401, body  # the queue system's token, or nothing
    code, body, _ = _post(port, {"window": "B01", "ticket": "Q-0041"},
                          token=TOKENS["viewer", port])
    assert code == 403 and "needs queue" in body["error"], body
    assert sim.status()["screen"] != "invite"
    code, body, seconds = _post(port, {"window": "B01", "ticket": "Q-0042"})
    assert code == 200 and body["ok"] and body["device"] == "sim-1", body
    assert seconds < 1.0, seconds  # design.md: within a second
    st = sim.status()
    assert st["screen"] == "invite", st  # open already, before any command moved time
    assert sim.send("key 2")[0].startswith("ok: key 2 counted")
    ratings = [json.loads(x) for x in sim.send("log")[:-1] if '"rating"' in x]
    assert ratings[-1]["ticket"] == "Q-0042" and ratings[-1]["level"] == 2
    assert sim.send("sync")[0].startswith("ok: sent")
    rows = cli("export", "--db", str(db), "--format", "csv").stdout.splitlines()
    assert rows[-1].split(",")[5:8] == ["Q-0042", "2", "满意"], rows


def test_a_window_not_serving_refuses_and_the_queue_system_is_told(serial_sim, pingjia_serve,
                                                                  tmp_path, cli):
    db, port, sim = _served(serial_sim, pingjia_serve, str(tmp_path / "hall.db"), cli)
    sim.send("pause")
    code, body, _ = _post(port, {"window": "B01", "ticket": "Q-1"})
    assert code == 409 and "not serving (paused)" in body["error"], body
    assert sim.status()["screen"] == "paused"
    code, body, _ = _post(port, {"window": "Z99", "ticket": "Q-1"})
    assert code == 404 and "no device serves window Z99" in body["error"]
    code, body, _ = _post(port, {"window": "B01", "ticket": "x" * 29})
    assert code == 400 and "at most 28 bytes" in body["error"]
    sim.send("power off")  # nobody at the device's port now
    code, body, seconds = _post(port, {"window": "B01", "ticket": "Q-2"})
    assert code == 504 and "did not answer within 1 s" in body["error"], body
    assert seconds < 2


def _device(db):
    c = Database(db)
    try:
        key = c.value("SELECT key FROM devices WHERE id = 'sim-1'")
        addr = c.value("SELECT value FROM meta WHERE key = 'invite_addr:sim-1'")
        counter = int(c.value("SELECT value FROM meta WHERE key = 'invite_counter:sim-1'"))
    finally:
        c.close()
    host, _, port = addr.rpartition(":")
    return bytes.fromhex(key), (host, int(port)), counter


def _datagram(addr, data, timeout=1.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, addr)
        try:
            return s.recvfrom(256)[0]
        except TimeoutError:
            return None


def test_a_replayed_or_forged_invitation_does_nothing(serial_sim, pingjia_serve, db_url,
                                                     cli):
    db, port, sim = _served(serial_sim, pingjia_serve, db_url, cli)
    code, body, _ = _post(port, {"window": "B01", "ticket": "Q-7"})  # a real one first
    assert code == 200
    sim.send("key 1")
    key, addr, counter = _device(db)
    now = int(time.time()) - 946684800  # the device's clock is the collector's (real) one
    seen = invites.invitation(key, "sim-1", counter, now, "Q-7")  # as the collector sent it
    assert invites.parse_reply(_datagram(addr, seen), key, counter)[0] == invite.REPLAYED
    forged = invites.invitation(b"\x01" * 16, "sim-1", counter + 50, now, "Q-8")
    assert _datagram(addr, forged) is None  # a forgery gets no answer at all
    bent = bytearray(invites.invitation(key, "sim-1", counter + 60, now, "Q-9"))
    bent[-40] ^= 1  # the ticket changed on the way
    assert _datagram(addr, bytes(bent)) is None
    old = invites.invitation(key, "sim-1", counter + 70, now - 3600, "Q-10")  # kept an hour
    assert invites.parse_reply(_datagram(addr, old), key, counter + 70)[0] == invite.STALE
    other = invites.invitation(key, "sim-2", counter + 80, now, "Q-11")  # another device's
    assert _datagram(addr, other) is None
    st = sim.status()
    assert st["screen"] in ("thanks", "overtime", "serving"), st  # no invitation opened
    ratings = [json.loads(x) for x in sim.send("log")[:-1] if '"rating"' in x]
    assert [r["ticket"] for r in ratings] == ["Q-7"]
    # and the collector's next one still opens: its counter is past all of those
    c = Database(db)
    c.execute("UPDATE meta SET value = ? WHERE key = 'invite_counter:sim-1'",
              (str(counter + 100),))
    c.close()
    code, body, _ = _post(port, {"window": "B01", "ticket": "Q-12"})
    assert code == 200, body

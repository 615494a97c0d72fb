# A strict double of the ESP32 port's `network` module (docs/library/network.WLAN.rst):
# WLAN(STA_IF) joins the access point the world names (tests/esp32/world.py
# "wifi": {"ssid", "key"}) with the port's status codes; sockets stay the unix
# port's real ones, so a joined board reaches a collector on 127.0.0.1.
import world
from micropython import const

STA_IF = const(0)
AP_IF = const(1)
STAT_IDLE = const(1000)
STAT_CONNECTING = const(1001)
STAT_GOT_IP = const(1010)
STAT_BEACON_TIMEOUT = const(200)
STAT_NO_AP_FOUND = const(201)
STAT_WRONG_PASSWORD = const(202)
STAT_ASSOC_FAIL = const(203)
STAT_HANDSHAKE_TIMEOUT = const(204)
_JOIN_MS = const(300)  # from connect() to an address, when the AP answers


class WLAN:
    _interfaces = {}

    def __new__(cls, interface_id=STA_IF):
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        w = cls._interfaces.get(interface_id)
        if w is None:  # the port has one object per interface
            w = object.__new__(cls)
            w._id = interface_id
            w._active = False
            w._status = STAT_IDLE
            w._since = 0
            w._ssid = None
            cls._interfaces[interface_id] = w
        return w

    def __init__(self, interface_id=STA_IF):
        pass

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        self._active = bool(is_active)
        if not self._active:
            self._status = STAT_IDLE

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")  # the port: wifi is not active
        if self._id != STA_IF:
            raise OSError("AP interface cannot connect")
        ap = world.config().get("wifi") or {}
        self._ssid = ssid
        self._since = world.now_ms()
        if ssid != ap.get("ssid"):
            self._status = STAT_NO_AP_FOUND
        elif key != ap.get("key", ""):
            self._status = STAT_WRONG_PASSWORD
        else:
            self._status = STAT_CONNECTING

    def disconnect(self):
        self._status = STAT_IDLE

    def status(self, param=None):
        if param is not None:
            if param == "rssi":
                return -55 if self.isconnected() else 0
            raise ValueError("unknown status param")
        if self._status == STAT_CONNECTING and world.now_ms() - self._since >= _JOIN_MS:
            self._status = STAT_GOT_IP
        return self._status

    def isconnected(self):
        return self._active and self.status() == STAT_GOT_IP

    def ifconfig(self, config=None):
        if config is not None:
            return None
        if self.isconnected():
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kwargs):
        if args:
            if args[0] == "mac":
                return world.config().get("mac_bytes", b"\x24\x6f\x28\xa1\xb2\xc3")
            if args[0] == "ssid":
                return self._ssid or ""
            raise ValueError("unknown config param")
        for k in kwargs:
            if k not in ("dhcp_hostname", "hostname", "reconnects", "txpower", "pm"):
                raise ValueError("unknown config param")

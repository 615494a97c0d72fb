# A stand-in for network.WLAN on the unix port: the same API the link uses
# (active, connect, isconnected, disconnect, status). Sockets are
# the host's real ones to 127.0.0.1; a test can take the "access point" away.
from micropython import const

STAT_IDLE = const(0)
STAT_CONNECTING = const(1)
STAT_GOT_IP = const(1010)
STAT_NO_AP_FOUND = const(201)
STA_IF = const(0)


class SimWLAN:
    def __init__(self, interface=STA_IF, reachable=True):
        self.reachable = reachable  # the access point is in range
        self._active = False
        self._connected = False

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self._connected = False
        return self._active

    def connect(self, ssid=None, key=None):
        self._active = True
        self._connected = self.reachable

    def disconnect(self):
        self._connected = False

    def isconnected(self):
        return self._connected and self.reachable

    def status(self, param=None):
        if self.isconnected():
            return STAT_GOT_IP
        return STAT_NO_AP_FOUND if self._active and not self.reachable else STAT_IDLE

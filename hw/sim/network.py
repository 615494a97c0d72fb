# A stand-in for network.WLAN on the unix port: the calls the link makes
# (active, connect, isconnected, status), with the real API's arguments; the
# virtual board makes it as SimWLAN(). Sockets are the host's real ones to
# 127.0.0.1; a test can take the "access point" away (reachable) and bring it back.
from micropython import const

_STAT_IDLE = const(0)
_STAT_GOT_IP = const(1010)
_STAT_NO_AP_FOUND = const(201)


class SimWLAN:
    reachable = True  # the access point is in range
    # 0 inactive, 1 active, 2 connect() called (ESP32: it rejoins when the AP comes back)
    _state = 0

    def active(self, on=None):
        if on is not None:
            self._state = max(self._state, 1) if on else 0
        return self._state > 0

    def connect(self, ssid=None, key=None):
        self._state = 2

    def isconnected(self):
        return self._state == 2 and self.reachable

    def status(self, param=None):
        if self.isconnected():
            return _STAT_GOT_IP
        return _STAT_NO_AP_FOUND if self._state == 2 else _STAT_IDLE

# Watches the badge slot through a reader driver (read_uid() -> hex or None).
# A card that misses one poll is not yet gone: removal needs two misses.
from firmware.const import const

POLL_MS = const(300)
_MISSES = const(2)


class BadgeWatch:
    def __init__(self, reader):
        self.reader = reader
        self.uid = None
        self._miss = 0
        self.errors = 0  # counts the polls the reader failed (OSError)

    def poll(self):
        """The UID now in the slot if it changed since the last poll, else False."""
        try:
            uid = self.reader.read_uid()
        except OSError:
            self.errors += 1
            return False
        if uid is None:
            if self.uid is None:
                return False
            self._miss += 1
            if self._miss < _MISSES:
                return False
        self._miss = 0
        if uid == self.uid:
            return False
        self.uid = uid
        return uid

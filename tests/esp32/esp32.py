# A strict double of the ESP32 port's `esp32` module (docs/library/esp32.rst): the
# partition table of MicroPython's ESP32_GENERIC 4 MB image, with the "vfs" data
# partition backed by the world's flash image (a host file), as the block device
# the port mounts littlefs on: readblocks/writeblocks with offsets, ioctl.
import world
from micropython import const

_BLOCK = const(4096)


_flash = None


def flash():
    """The chip's flash behind the vfs partition: opened once, before the port
    mounts it over "/" (after that the host's files are out of reach)."""
    global _flash
    if _flash is None:
        from hw.sim.flash import FileBlockDev

        _flash = FileBlockDev(world.config()["flash"], 0x200000 // _BLOCK)
    return _flash


class Partition:
    BOOT = const(0)
    RUNNING = const(1)
    TYPE_APP = const(0)
    TYPE_DATA = const(1)

    # (type, subtype, offset, size, label): ports/esp32/partitions-4MiB.csv
    _TABLE = (
        (1, 0x02, 0x9000, 0x6000, "nvs"),
        (1, 0x01, 0xF000, 0x1000, "phy_init"),
        (0, 0x00, 0x10000, 0x1F0000, "factory"),
        (1, 0x81, 0x200000, 0x200000, "vfs"),
    )

    def __init__(self, id, block_size=_BLOCK):
        if id == Partition.BOOT or id == Partition.RUNNING:
            id = "factory"
        for row in Partition._TABLE:
            if row[4] == id:
                self._row = row
                break
        else:
            raise ValueError("partition not found")
        if block_size < 128 or block_size & (block_size - 1):
            raise ValueError("invalid block size")
        self._bs = block_size
        self._dev = flash() if row[4] == "vfs" else None

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=_BLOCK):
        found = []
        for t, st, _off, _size, lab in Partition._TABLE:
            if t == type and (subtype == 0xFF or st == subtype) and (label is None or
                                                                    lab == label):
                found.append(Partition(lab, block_size))
        return found

    def info(self):
        t, st, off, size, label = self._row
        return (t, st, off, size, label, False)

    def _need_data(self):
        if self._dev is None:
            raise OSError("partition %s has no data here" % self._row[4])

    def readblocks(self, block_num, buf, offset=0):
        self._need_data()
        self._dev.readblocks(block_num, buf, offset)

    def writeblocks(self, block_num, buf, offset=None):
        self._need_data()
        self._dev.writeblocks(block_num, buf, offset)

    def ioctl(self, cmd, arg):
        self._need_data()
        return self._dev.ioctl(cmd, arg)


def wake_on_ext0(pin, level):
    pass


def raw_temperature():
    return 120

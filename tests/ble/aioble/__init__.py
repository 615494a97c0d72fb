# A double of micropython-lib's aioble (micropython/bluetooth/aioble), for the unix port
# and the tests: the same public names, arguments, buffer sizes and errors, written anew
# over the `bluetooth` double beside it (tests/ble/bluetooth.py). aioble itself is never
# copied into this repository; on the board it comes frozen or through mip.
from micropython import const

from .core import GattError, config, log_error, log_info, log_warn, stop
from .device import Device, DeviceDisconnectedError
from .peripheral import advertise
from .server import BufferedCharacteristic, Characteristic, Descriptor, Service, register_services

ADDR_PUBLIC = const(0)
ADDR_RANDOM = const(1)

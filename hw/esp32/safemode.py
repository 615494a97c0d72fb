# Safe mode (design.md section 4): the 请评价 key held at power-on, or three boots
# in a row that failed before the app ran, start only the REPL, so a technician
# can always reach the board. boot.py decides it before anything of the app is
# imported; main.py asks; the app, once its tasks run, says so (ran()), which
# ends the run of failed boots. A small file on the flash counts them: it
# survives a power cut, where RTC memory would not. A garbled file counts as 0
# (never a reason not to boot).
from micropython import const

from hw.esp32 import wiring

_FILE = "/boot.state"
_MAX_FAILED = const(3)
_FAILED_SANE = const(1000)  # more failed boots than this: a garbled file
_RESET_PAUSE_S = const(2)  # the why on the console before the reset
KEY = "key"  # the reasons, as the next normal boot records them
CRASHES = "crashes"

reason = None  # why this boot is in safe mode (None: a normal boot)
previous = None  # why the last boot was, if it was: the app records it
after_failed = False  # the last boot did not get the app running


def read(path=_FILE):
    """(boots since the app last ran, the safe-mode reason still to record)."""
    try:
        with open(path) as f:
            words = f.read().split()
        failed = int(words[0])
        pending = words[1] if len(words) > 1 and words[1] in (KEY, CRASHES) else None
        return (failed if 0 <= failed < _FAILED_SANE else 0), pending
    except (OSError, ValueError, IndexError):
        return 0, None


def write(failed, pending, path=_FILE):
    tmp = path + ".new"
    try:
        with open(tmp, "w") as f:
            f.write("%d %s" % (failed, pending or "-"))
        import os

        os.rename(tmp, path)
    except OSError as e:  # a full or broken flash: boot anyway
        print("safe mode: cannot write", path, e)


def decide(key_held, path=_FILE):
    """At power-on: the reason for safe mode, or None; counts this boot."""
    global reason, previous, after_failed
    failed, pending = read(path)
    after_failed = failed > 0
    if key_held:
        reason = KEY
    elif failed >= _MAX_FAILED:
        reason = CRASHES
    else:
        reason = None
    if reason:
        write(0, reason, path)  # a reset after the technician's visit tries the app again
    else:
        previous = pending
        write(failed + 1, pending, path)
    return reason


def invite_key_held():
    import machine

    # active low; GPIO 34 has no pull resistor: the keypad board pulls it up
    return machine.Pin(wiring.INVITE_PIN, machine.Pin.IN).value() == 0


def ran(path=_FILE):
    """The app's tasks run: this boot did not fail, and its reason is recorded."""
    write(0, None, path)


def failed(error):
    """The app did not start: say why and reset, so that a fault that passes
    (a brown-out, a flash hiccup) costs one boot, and one that stays ends, after
    three boots, in safe mode rather than in a board that resets for ever."""
    import time

    import machine

    print("the app did not start:", repr(error))
    time.sleep(_RESET_PAUSE_S)
    machine.reset()

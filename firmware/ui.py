# Key LEDs and buzzer. The same feedback for every key: nothing staff can see
# or hear tells which key a citizen pressed.
from firmware.const import const
from firmware.core import LEDS_BLINK, LEDS_OFF, LEDS_ON

_BLINK_MS = const(400)
_BEEP_MS = const(80)
_BEEP_HZ = const(2700)
_BEEP_DUTY = const(32768)  # half of duty_u16's range: a square wave


class Feedback:
    def __init__(self, leds, buzzer, timebase):
        self.led_pins = leds
        self.buzzer = buzzer  # PWM-like: freq(), duty_u16()
        self.tb = timebase
        self.pattern = LEDS_OFF
        self.beeps = 0  # counts the beeps
        self._beep_end = None
        self._flag = timebase.flag()
        self._set_all(0)
        if buzzer:
            buzzer.duty_u16(0)

    def _set_all(self, v):
        for p in self.led_pins:
            p.value(v)

    def leds(self, pattern):
        if pattern == self.pattern:
            return  # nothing changes where staff can see it (a reason after 不满意)
        self.pattern = pattern
        self._set_all(1 if pattern == LEDS_ON else 0)
        self._flag.set()

    def beep(self):
        self.beeps += 1
        if self.buzzer:
            self.buzzer.freq(_BEEP_HZ)
            self.buzzer.duty_u16(_BEEP_DUTY)
            self._beep_end = self.tb.mono_ms() + _BEEP_MS
            self._flag.set()

    async def run(self):
        on = 0
        while True:
            now = self.tb.mono_ms()
            if self._beep_end is not None and now >= self._beep_end:
                self._beep_end = None
                self.buzzer.duty_u16(0)
            d = self._beep_end
            if self.pattern == LEDS_BLINK:
                on ^= 1
                self._set_all(on)
                t = now + _BLINK_MS
                d = t if d is None or t < d else d
            await self.tb.wait(self._flag, d)

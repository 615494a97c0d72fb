# Runs first on every boot, before anything of the app is imported: decides safe
# mode (hw/esp32/safemode.py), so a technician can always reach the REPL.
import gc

try:
    from hw.esp32 import safemode

    if safemode.decide(safemode.invite_key_held()):
        print("safe mode (%s): the app does not start; the REPL is yours. Reset to try "
              "the app again." % safemode.reason)
except Exception as e:  # a broken flash or file must not keep the REPL away either
    print("boot:", repr(e))
gc.collect()

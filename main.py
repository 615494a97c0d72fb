# The device entry point: the real board, the firmware's app, its tasks; nothing
# in safe mode (boot.py decided it), where the REPL is the technician's.
import asyncio

from hw.esp32 import safemode

if safemode.reason is None:
    # boot.py and main.py share these globals: with the name gone, the board drops the
    # module once the app runs (Board.started)
    del safemode
    try:
        from firmware.app import App
        from hw.esp32.board import Board

        # a module global: after Ctrl-C at the REPL, app.status() tells a technician
        # what the window was doing
        app = App(Board())
    except Exception as e:
        from hw.esp32 import safemode

        safemode.failed(e)  # resets: three failed boots in a row are safe mode
    try:
        asyncio.run(app.run())
    finally:
        asyncio.new_event_loop()  # a clean loop if the REPL restarts us

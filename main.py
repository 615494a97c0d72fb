# The device entry point: the real board, the firmware's app, its tasks.
import asyncio

from firmware.app import App
from hw.esp32.board import Board

# a module global: after Ctrl-C at the REPL, app.status() tells a technician what the
# window was doing
app = App(Board())
try:
    asyncio.run(app.run())
finally:
    asyncio.new_event_loop()  # a clean loop if the REPL restarts us

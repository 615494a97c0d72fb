# Runs first on every boot. Nothing slow here: main.py starts the device.
import gc

gc.collect()

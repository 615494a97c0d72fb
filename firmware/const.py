# micropython.const, for the firmware modules that also run on CPython (the
# collector, the host tools and their tests import record, frame, roster...).
# On MicroPython the compiler folds `_NAME = const(...)` wherever const came
# from; on CPython it is the identity. The one place that stands in for it.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x

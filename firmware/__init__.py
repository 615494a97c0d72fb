import sys


def forget(name):
    """Drop an imported module (name: "package.module") from sys.modules and from its
    package, for code that runs once (at boot): nothing names it then, and its code and
    objects are garbage for the next collection. A later import loads it again."""
    sys.modules.pop(name, None)
    package, _, leaf = name.rpartition(".")
    if package in sys.modules and hasattr(sys.modules[package], leaf):
        delattr(sys.modules[package], leaf)

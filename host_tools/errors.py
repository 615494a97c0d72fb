"""The one error type of the host tools: bad input or a step that failed for a reason a
person can act on. `pingjia` prints its message as one line and exits 2, and the server
answers it as a 4xx; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class PingjiaError(Exception):
    pass

"""Progress bars for the technician's commands (deploy, flash, every pull): tqdm on stderr,
drawn only on a terminal (disable=None), so scripts, pipes and tests see only the results."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bar(total: int, what: str, unit: str) -> Iterator:
    from tqdm import tqdm

    with tqdm(total=total, desc=what, unit=unit, unit_scale=unit == "B", disable=None,
              leave=False, dynamic_ncols=True) as b:
        yield b

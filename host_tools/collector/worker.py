"""A background worker of `pingjia serve`: a thread of its own that a poke() wakes early
(alerts.Watcher after a stored frame, webhooks.Deliverer after an alert is raised)."""

from __future__ import annotations

import threading


class Worker:
    """Subclasses give _run, which loops until self.stopping and waits on self.wake."""

    name = "pingjia-worker"

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self):
        self.thread.start()
        return self

    def poke(self) -> None:
        self.wake.set()

    def stop(self, timeout: float = 10) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout)

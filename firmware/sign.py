# The sign seen by the hall. Core calls show(screen) on every change of what is
# shown; a sign's run() task does the slow part (an e-ink refresh) on its own time.
from firmware import texts


class TextSign:
    """A sign drawn as text (the virtual device's terminal, or a log)."""

    def __init__(self, out=None):
        self.out = out  # callable(str) or None
        self.screen = None
        self.updates = 0  # counts show() calls

    def show(self, screen):
        self.screen = screen
        self.updates += 1
        if self.out:
            self.out(texts.text(screen))

    async def run(self, timebase):
        pass

    def text(self):
        return texts.text(self.screen) if self.screen else ""

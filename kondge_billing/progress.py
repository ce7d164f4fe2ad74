"""A progress bar on stderr for long operator commands (no dependency).

It redraws at most ten times a second, so 100,000 steps cost nothing, and
stays silent when told to (tests, scripts) or when stderr is not a terminal
unless forced.
"""

import sys
import time


class Progress:
    WIDTH = 30

    def __init__(self, label: str, total: int, stream=None, enabled: bool | None = None):
        self.label = label
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self._drawn_at = 0.0

    def advance(self, steps: int = 1):
        self.done += steps
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at >= 0.1 or self.done >= self.total):
            self._drawn_at = now
            self._draw()

    def _draw(self):
        filled = self.WIDTH * min(self.done, self.total) // self.total
        percent = 100 * min(self.done, self.total) // self.total
        self.stream.write(f"\r{self.label:<12} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                          f"{percent:3d}% {self.done}/{self.total}")
        self.stream.flush()

    def finish(self):
        if self.enabled:
            self.done = max(self.done, self.total)
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


class Quiet(Progress):
    def __init__(self, label: str = "", total: int = 1):
        super().__init__(label, total, enabled=False)


def factory(enabled: bool | None):
    """A maker of progress bars: shown on a terminal, or as --progress/--no-progress says."""
    return lambda label, total: Progress(label, total, enabled=enabled)

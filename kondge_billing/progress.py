"""The progress bar of long operator jobs (issuing cards, loading a tariff,
reading a CSV deck), on stderr, without a dependency.

It redraws at most ten times a second, so 1,000,000 steps cost nothing,
shows the share done and the seconds spent, and stays silent when told to
(tests, scripts) or when stderr is not a terminal unless forced. A job
takes a maker of bars, `progress(label, total)`: `factory` for the tool's
`--progress`/`--no-progress`, `quiet` for none.
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
        self._started = time.monotonic()

    def advance(self, steps: int = 1):
        self.done += steps
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at >= 0.1 or self.done >= self.total):
            self._drawn_at = now
            self._draw()

    def _draw(self):
        filled = self.WIDTH * min(self.done, self.total) // self.total
        percent = 100 * min(self.done, self.total) // self.total
        elapsed = time.monotonic() - self._started
        self.stream.write(f"\r{self.label:<12} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                          f"{percent:3d}% {self.done}/{self.total} {elapsed:5.1f} s")
        self.stream.flush()

    def finish(self):
        if self.enabled:
            self.done = max(self.done, self.total)
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def factory(enabled: bool | None, at_least: int = 0):
    """A maker of progress bars: shown on a terminal, or as --progress/--no-progress
    says; none for a job of fewer than `at_least` steps (it is over at once)."""
    return lambda label, total: Progress(label, total,
                                         enabled=enabled if total >= at_least else False)


def quiet(label: str, total: int) -> Progress:
    """No bar (the default of a job called from code)."""
    return Progress(label, total, enabled=False)

"""A small progress bar on stderr for long operations (a 1M-prefix deck)."""

import sys
import time


class Progress:
    """Progress("loading prefixes", total).advance(n) ... .done()."""

    def __init__(self, label: str, total: int, stream=None, every: float = 0.25,
                 quiet_below: int = 10000):
        self.label, self.total, self.count = label, max(total, 1), 0
        self.quiet = total < quiet_below       # a small file needs no bar
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.started = self._shown = time.monotonic()

    def _show(self, end=""):
        if self.quiet:
            return
        share = min(self.count / self.total, 1)
        bar = "#" * int(share * 30)
        elapsed = time.monotonic() - self.started
        self.stream.write(f"\r{self.label}: [{bar:<30}] {self.count}/{self.total} "
                          f"{share:4.0%} {elapsed:5.1f} s{end}")
        self.stream.flush()

    def advance(self, n: int = 1):
        self.count += n
        now = time.monotonic()
        if now - self._shown >= self.every:
            self._shown = now
            self._show()

    def done(self):
        self.count = max(self.count, self.total)
        self._show("\n")


class NoProgress:
    def __init__(self, *args, **kwargs):
        pass

    def advance(self, n: int = 1):
        pass

    def done(self):
        pass

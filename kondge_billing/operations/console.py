"""What the service's supervisor and its parts print: one line each, and
the tail of a log to show when a part would not start."""

from pathlib import Path


def say(message: str):
    print(f"kondge: {message}", flush=True)


def tail(path: Path, offset: int, size: int = 2000) -> str:
    """The last `size` bytes of what `path` gained after `offset`, as text."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return ""
    return data[-size:].decode(errors="replace")

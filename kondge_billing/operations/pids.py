"""Processes named by pid files: whether the pid runs, and what it is.

A pid file outlives its process (a crash, a kill -9), and its number may
be another program's since; each user of these says what it expects the
process to be."""

import os
from pathlib import Path


def running_pid(path: Path) -> int | None:
    """The pid in `path` (its first line) if that process runs (a zombie nobody reaped does not)."""
    try:
        return alive(int(path.read_text().split("\n", 1)[0]))
    except (OSError, ValueError):
        return None


def alive(pid: int) -> int | None:
    """`pid` if that process runs (not a zombie), else None."""
    try:
        os.kill(pid, 0)
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return pid
    except (OSError, ValueError, IndexError):
        return None


def name(pid: int) -> str:
    """The process's name (its comm: the program's, at most 15 characters); '' if it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""

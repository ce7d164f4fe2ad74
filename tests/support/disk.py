"""A full disk where the service writes: a tiny file system (16 KiB of tmpfs)
mounted over a directory and filled up, so that every write there fails
with ENOSPC. Needs root (mount); the directory's own contents reappear once
it is freed."""

import subprocess


class FullDisks:
    """The directories filled so far; free() (or leaving a `with`) unmounts
    them all, lazily, in case the service still holds a file open there."""

    def __init__(self):
        self.mounted = []

    def fill(self, directory):
        directory.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(directory)],
                       check=True)
        self.mounted.append(directory)
        try:
            with open(directory / "filler", "wb") as f:
                while True:
                    f.write(b"x" * 4096)
                    f.flush()
        except OSError:
            pass                                # full

    def free(self):
        for directory in self.mounted:
            subprocess.run(["umount", "-l", str(directory)], check=False)
        self.mounted = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()

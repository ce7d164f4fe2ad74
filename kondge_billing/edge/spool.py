"""The accounting spool: records the database could not take, kept on disk
until it can, and only then answered for.

Each FreeRADIUS process that runs the hook writes to a spool of its own
(`$KONDGE_RUN_DIR/spool/`): one JSON line per record, appended and fsynced
before the gateway is answered. When the disk cannot take it (full, gone,
read-only) the record is not answered: the gateway sends it again, or to its
second server. The supervisor replays every spool through the same call
path once the database answers (`replay`), in the order written, and
removes a file once every record in it is stored. A replay that spends its
time budget keeps the records not yet stored (the file rewritten with them
alone); one cut short by the database starts that file again later, which
changes nothing (records are keyed by the call's identity).

Records FreeRADIUS could not even hand to the hook (a string attribute
that is not UTF-8) are kept whole by FreeRADIUS itself in
`$KONDGE_RUN_DIR/quarantine/` (its detail format, bytes as they came), and
replayed from there with every byte that is not UTF-8 escaped
(`quarantined`), flagged bytes-escaped; the file is kept for the operator.
"""

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

SPOOL = "spool"
QUARANTINE = "quarantine"
CURRENT = "records.jsonl"        # what the hook appends to
REPLAYED = ".replayed"           # a quarantine file whose records are stored


class SpoolError(OSError):
    """The spool could not keep a record (disk full, gone, read-only)."""


# A file beside a spool that says it could not keep a record, and why; it
# goes as soon as the spool keeps one again (kondge accounting spool, and
# kondge server status, report it).
UNWRITABLE = "spool-unwritable"
# Less free space than this where a spool lives is a problem before it happens.
LOW_SPACE = 16 * 1024 * 1024


def append(directory: Path, pairs, received_at: float) -> None:
    """Keep one record: appended and fsynced, or SpoolError."""
    kept = [[str(item[0]), str(item[-1])] for item in pairs or ()
            if isinstance(item, tuple) and len(item) >= 2]
    data = (json.dumps({"received": int(received_at), "pairs": kept},
                       ensure_ascii=True) + "\n").encode()
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(directory / CURRENT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(fd, data)
            if written != len(data):
                # a short write leaves half a line: cut it off again
                os.ftruncate(fd, os.fstat(fd).st_size - written)
                raise OSError(28, "short write (disk full?)")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        _mark(directory, f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {exc.strerror}")
        raise SpoolError(exc.errno, f"cannot keep the record in {directory}: "
                                    f"{exc.strerror}") from exc
    marker = directory.parent / UNWRITABLE
    if marker.exists():
        marker.unlink(missing_ok=True)


def _mark(directory: Path, why: str) -> None:
    try:
        (directory.parent / UNWRITABLE).write_text(why + "\n")
    except OSError:
        pass                    # the disk that refused the record may refuse this too


def recheck(directories) -> list[Path]:
    """Spools that could not keep a record: try again with a probe; those that
    can keep one now lose their marker. Returns them."""
    mended = []
    for directory in directories:
        marker = directory.parent / UNWRITABLE
        if not marker.exists():
            continue
        probe = directory / f".probe-{os.getpid()}"
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if os.write(fd, b"x" * 4096) != 4096:
                    continue
                os.fsync(fd)
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError:
            continue
        marker.unlink(missing_ok=True)
        mended.append(directory)
    return mended


def problems(directories) -> list[str]:
    """What keeps a spool from keeping records: a record it could not keep
    lately, or too little free space where it lives."""
    found = []
    for directory in directories:
        marker = directory.parent / UNWRITABLE
        if marker.exists():
            try:
                why = marker.read_text().strip()
            except OSError:
                why = "unreadable marker"
            found.append(f"the spool {directory} could not keep a record "
                         f"(not answered: the gateway sends it again): {why}")
        probe = directory if directory.exists() else directory.parent
        try:
            st = os.statvfs(probe)
        except OSError:
            continue
        free = st.f_bavail * st.f_frsize
        if free < LOW_SPACE:
            found.append(f"only {free // 1024} KiB free where the spool {directory} lives")
    return found


@dataclass
class Replayed:
    stored: int = 0
    files: int = 0
    waiting: int = 0                 # records left (the database stopped answering)
    paused: bool = False             # the budget was spent: the rest comes next time


def _keep_rest(path: Path, lines: list[bytes]) -> None:
    """Replace a spool file by its records not yet stored: written beside it,
    fsynced, renamed over it (a crash leaves one or the other, whole)."""
    rest = path.with_name(path.name + ".rest")
    with open(rest, "wb") as f:
        f.write(b"".join(line + b"\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())
    os.replace(rest, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pending(directory: Path) -> list[Path]:
    """The spool's files, oldest first: those being replayed, then the current one."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("records*.jsonl"), key=lambda p: (p.name == CURRENT, p.name))


def _take(directory: Path) -> None:
    """Move the current file aside (atomically), so the hook starts a new one
    and the replay reads a file nobody writes to."""
    current = directory / CURRENT
    if current.exists():
        current.rename(directory / f"records-{time.time_ns()}.jsonl")


def replay(directories, handle, log, budget: float | None = None) -> Replayed:
    """Store every spooled record with handle(pairs) -> "ok" | "fail";
    stop at the first "fail" (the database went away again), or once
    `budget` seconds are spent: the records not yet stored are kept (the
    file rewritten with them alone, atomically) for the next call. The
    budget leaves the CPU and the database to the live calls while a long
    outage's spool drains, and the supervisor free to supervise."""
    done = Replayed()
    until = None if budget is None else time.monotonic() + budget
    for directory in directories:
        _take(directory)
        for path in pending(directory):
            if path.name == CURRENT:
                continue
            lines = path.read_bytes().splitlines()
            for i, line in enumerate(lines):
                if until is not None and time.monotonic() >= until and i:
                    _keep_rest(path, lines[i:])
                    done.waiting += len(lines) - i
                    done.paused = True
                    return done
                try:
                    record = json.loads(line)
                    pairs = tuple((n, v) for n, v in record["pairs"]) + (
                        ("Timestamp", str(record["received"])),)
                except (ValueError, KeyError, TypeError):
                    log("error", f"{path}: line {i + 1} is not a spooled record; kept in "
                                 f"{path.with_suffix('.bad')}")
                    with open(path.with_suffix(".bad"), "ab") as bad:
                        bad.write(line + b"\n")
                    continue
                if handle(pairs) != "ok":
                    done.waiting += len(lines) - i
                    return done
                done.stored += 1
            path.unlink()
            done.files += 1
    return done


def count(directories) -> dict:
    """Records waiting in the spools, and quarantined records not yet replayed."""
    waiting = quarantined = 0
    for directory in directories:
        for path in pending(directory):
            try:
                waiting += path.read_bytes().count(b"\n")
            except OSError:
                pass
        q = directory.parent / QUARANTINE
        if q.is_dir():
            quarantined += sum(len(parse_detail(p.read_bytes()))
                               for p in sorted(q.glob("detail*")) if p.suffix != REPLAYED)
    return {"spooled": waiting, "quarantined": quarantined}


# --- quarantine: FreeRADIUS's detail format, read as bytes ------------------------

_PAIR = re.compile(rb"^\t([A-Za-z0-9][A-Za-z0-9_.:-]*) = (.*)$")
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[0-7]{3}|[\\\"nrt])")
_SIMPLE = {b"\\": b"\\", b'"': b'"', b"n": b"\n", b"r": b"\r", b"t": b"\t"}


def _unquote(raw: bytes) -> bytes:
    if len(raw) >= 2 and raw[:1] == raw[-1:] == b'"':
        raw = raw[1:-1]

        def one(match):
            code = match.group(1)
            if code[:1] == b"x":
                return bytes([int(code[1:], 16)])
            if len(code) == 3:
                return bytes([int(code, 8) & 0xFF])
            return _SIMPLE[code]
        raw = _ESCAPE.sub(one, raw)
    return raw


def parse_detail(data: bytes) -> list[tuple[tuple[str, str], ...]]:
    """The records of a detail file, each a tuple of (name, value) pairs with
    every byte that is not UTF-8 escaped (\\xNN)."""
    records, current = [], None
    for line in data.split(b"\n"):
        if not line.strip():
            if current:
                records.append(tuple(current))
            current = None
            continue
        if not line.startswith(b"\t"):
            current = []                            # a record starts with its time
            continue
        match = _PAIR.match(line)
        if match is None or current is None:
            continue
        name = match.group(1).decode("ascii")
        value = _unquote(match.group(2)).decode("utf-8", "backslashreplace")
        current.append((name, value))
    if current:
        records.append(tuple(current))
    return records


def replay_quarantine(directories, handle, log) -> Replayed:
    """Store the quarantined records, bytes escaped and flagged; each file,
    once all its records are stored, is kept as *.replayed for the operator."""
    done = Replayed()
    for directory in directories:
        q = directory.parent / QUARANTINE
        if not q.is_dir():
            continue
        for path in sorted(q.glob("detail*")):
            if path.suffix == REPLAYED or path.name.endswith(".tmp"):
                continue
            taken = path.with_name(f"{path.name}-{time.time_ns()}.tmp")
            path.rename(taken)                      # FreeRADIUS starts a new file
            records = parse_detail(taken.read_bytes())
            for pairs in records:
                if handle(pairs + (("Kondge-Flag", "bytes-escaped"),)) != "ok":
                    taken.rename(path.with_name(path.name + f"-{time.time_ns()}"))
                    done.waiting += 1
                    return done
                done.stored += 1
            taken.rename(taken.with_suffix(REPLAYED))
            done.files += 1
            log("error", f"{len(records)} record(s) FreeRADIUS could not hand to the hook "
                         f"(bytes that are not UTF-8) stored with those bytes escaped; the "
                         f"originals are kept in {taken.with_suffix(REPLAYED)}")
    return done

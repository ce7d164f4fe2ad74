"""Database access: one connection per thread (or per process), autocommit,
bounded waits.

The call path runs under FreeRADIUS's Python lock, so every wait here stalls
the whole server: statements are single (each is atomic on its own), carry
a statement timeout, and a dead or hung database is noticed fast:

- a connection the server closed (PostgreSQL restarted, crashed, or was
  stopped with -m immediate) fails its next statement, with an
  OperationalError or a bare DatabaseError ("server closed the connection
  unexpectedly"): it is replaced and the statement tried once more on a
  new one. Every call-path statement is idempotent (keyed by the call's
  identity), so the retry cannot move money twice;
- a database that does not answer at all (its processes stopped, a
  network that drops packets) is given up after `deadline_ms` by the
  client itself: the statement timeout is the server's own and cannot fire
  when the server does not run. The call path then answers as when the
  database is down (accounting goes to the spool);
- after that, the database is taken for hung and every statement fails at
  once, on every thread, without touching its connection, until a probe
  answers: a connection opened without waiting (libpq's asynchronous
  connect) and a `SELECT 1`, polled by the requests that come meanwhile and
  never waited on. So a hung database costs a FreeRADIUS process one
  deadline, not one per request, its queue stays empty, and the first
  request after the database answers again is served.

The hook inside FreeRADIUS opens one connection per process
(`one_connection`): rlm_python3 runs one hook at a time in a process
whatever its threads, so a connection per thread only spreads the same
work over more backends, each with cold caches (docs/performance.md:
PostgreSQL CPU about a fifth lower a call with one). Its use is serialised
all the same, so that threads that did run at once would take turns.
"""

import contextlib
import select
import threading
import time

import psycopg2
import psycopg2.extensions

from ..errors import Unavailable
from . import prices


def _refuse_float(value):
    raise TypeError(f"float {value!r} sent to the database; money must be Decimal")


# NUMERIC arrives as Decimal (psycopg2's default); a float is never sent.
psycopg2.extensions.register_adapter(float, _refuse_float)


class RowDicts(psycopg2.extensions.cursor):
    """Rows as plain dicts, {column: value}: what RealDictCursor gives, built
    in one dict(zip()) instead of a Python call per column (17 us less
    client CPU for a row of 22 columns; the call path reads one such row
    per statement)."""

    def _dict(self, row):
        return dict(zip([c.name for c in self.description], row))

    def fetchone(self):
        row = super().fetchone()
        return None if row is None else self._dict(row)

    def fetchmany(self, size=None):
        rows = super().fetchmany(self.arraysize if size is None else size)
        return [self._dict(r) for r in rows]

    def fetchall(self):
        return [self._dict(r) for r in super().fetchall()]

    def __iter__(self):
        row = self.fetchone()
        while row is not None:
            yield row
            row = self.fetchone()


class DeadlineExceeded(psycopg2.OperationalError):
    """The database did not answer within the client's own deadline."""


_deadline = threading.local()


def _ready(conn, state, timeout: float | None) -> bool:
    """Wait until the connection's socket is ready for what poll() asked
    (`state`), for at most `timeout` seconds (None: as long as it takes);
    False if it was not ready in time."""
    fd = [conn.fileno()]
    if state == psycopg2.extensions.POLL_READ:
        want = (fd, [], [])
    elif state == psycopg2.extensions.POLL_WRITE:
        want = ([], fd, [])
    else:
        raise psycopg2.OperationalError(f"bad state from poll: {state}")
    return any(select.select(*want, timeout))


def _wait_with_deadline(conn):
    """psycopg2's wait callback: wait for the server, but not past the deadline
    of the thread's current statement (none: wait as long as it takes)."""
    limit = getattr(_deadline, "at", None)
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        timeout = None if limit is None else max(0.0, limit - time.monotonic())
        if not _ready(conn, state, timeout):
            raise DeadlineExceeded("the database did not answer in time")


class _OneConnection:
    """The process's one connection (Database(one_connection=True))."""

    conn = None


class Database:
    """Connections for one process; safe to share between threads."""

    #: after a connect or a statement that failed slowly (the database hung,
    #: or answered too late), fail fast for this long instead of waiting on it
    #: again inside the next request; a connect refused at once (the database
    #: is not running) is simply tried again with the next request, so that
    #: the first request after a restart is served.
    RETRY_CONNECT_AFTER = 0.25
    SLOW_FAILURE = 0.2
    #: while hung, a request waits at most this long for the probe, and only
    #: if none has waited for PROBE_EVERY: a database that answers again is
    #: seen by the first request after it, and a hung one costs a process at
    #: most a fifth of its time
    PROBE_WAIT = 0.05
    PROBE_EVERY = 0.25

    def __init__(self, dsn: str, timeout_ms: int = 2000, application_name: str = "kondge",
                 deadline_ms: int | None = None, one_connection: bool = False):
        self.dsn = dsn
        self.timeout_ms = timeout_ms
        self.application_name = application_name
        #: the client's own limit on one statement (and a connect); None: none
        self.deadline_ms = deadline_ms
        #: where this thread's connection is kept: its own, or the process's one
        self._local = _OneConnection() if one_connection else threading.local()
        #: taken while a statement or transaction runs on the process's one
        #: connection (uncontended under rlm_python3's lock)
        self._turn = threading.RLock() if one_connection else contextlib.nullcontext()
        self._down_until = 0.0
        #: set while the database is taken for hung: the probe that ends it
        self._probe: _Probe | None = None
        self._probing = threading.Lock()
        self._probed = 0.0
        #: when the database last came back (or this process began): its new
        #: connections' first statements are slow for a moment (a backend
        #: forked, its caches and the call path's functions loaded afresh)
        self.back_at = time.monotonic()
        self._failing = False
        if deadline_ms is not None:
            psycopg2.extensions.set_wait_callback(_wait_with_deadline)

    SETTLE = 3.0

    def settling(self) -> bool:
        """True for SETTLE seconds after the database came back (or this
        process began): slow answers then are its warming up, not overload."""
        return time.monotonic() - self.back_at < self.SETTLE

    def _failed(self):
        self._failing = True

    def _answered(self):
        if self._failing:
            self._failing = False
            self.back_at = time.monotonic()

    def _hung(self):
        """Take the database for hung: fail fast until the probe answers."""
        self._failed()
        self._down_until = time.monotonic() + self.RETRY_CONNECT_AFTER
        if self._probe is None:
            self._probe = _Probe(self.dsn)
            try:
                self._probe.start()      # under way while the database is away
            except psycopg2.Error:
                pass

    def _fail_fast(self):
        """Unavailable at once while the database is taken for hung and has not
        answered the probe yet (or within the pause after a failure)."""
        if time.monotonic() < self._down_until:
            raise Unavailable("database unreachable (waiting before the next try)")
        probe = self._probe
        if probe is None:
            return
        if not self._probing.acquire(blocking=False):
            raise Unavailable("database not answering (another thread is asking it)")
        try:
            now = time.monotonic()
            wait = 0.0
            if now - self._probed >= self.PROBE_EVERY:
                wait, self._probed = self.PROBE_WAIT, now
            if self._probe is probe and not probe.answered(wait):
                raise Unavailable("database not answering: failing fast until it "
                                  "answers again")
            if self._probe is probe:
                self._probe = None
                probe.close()
        finally:
            self._probing.release()

    def _connect(self):
        began = time.monotonic()
        try:
            with self._deadline():
                conn = psycopg2.connect(
                    self.dsn, connect_timeout=2, application_name=self.application_name,
                    options=f"-c statement_timeout={self.timeout_ms}")
                conn.autocommit = True
        except psycopg2.Error as exc:
            self._failed()
            if time.monotonic() - began > self.SLOW_FAILURE:
                self._hung()
            raise Unavailable(f"cannot connect to the database: {str(exc).strip()}") from exc
        # the ratings kept by their ids are the database's: one restored, or
        # a standby taken over, may have given the same ids to other versions
        prices.forget()
        return conn

    def _deadline(self):
        return _Deadline(self.deadline_ms)

    def connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._connect()
        return conn

    def drop(self):
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and not conn.closed:
            try:
                conn.close()
            except psycopg2.Error:
                pass

    def run(self, work):
        """work(cursor) on this thread's connection; one retry on a broken one."""
        with self._turn:
            return self._run(work)

    def _run(self, work):
        for attempt in (1, 2):
            self._fail_fast()
            conn = self.connection()
            try:
                with self._deadline():
                    with conn.cursor(cursor_factory=RowDicts) as cur:
                        result = work(cur)
                self._answered()
                return result
            except DeadlineExceeded as exc:
                self.drop()              # its state is unknown: never used again
                self._hung()
                raise Unavailable(f"database error: {exc}") from exc
            except psycopg2.DatabaseError as exc:
                # the server closed the connection (a restart, a crash): a bare
                # DatabaseError or an OperationalError, with no SQLSTATE (every
                # error the server reports for a statement carries one)
                broken = conn.closed != 0 or exc.pgcode is None or isinstance(
                    exc, psycopg2.InterfaceError)
                if not broken:
                    raise                # a statement's own error (a check, a bug)
                self._failed()
                self.drop()
                if attempt == 1:
                    continue
                raise Unavailable(f"database error: {str(exc).strip()}") from exc

    def transaction(self, work):
        """work(cursor) in one transaction on this thread's connection: all or nothing."""
        with self._turn:
            return self._transaction(work)

    def _transaction(self, work):
        self._fail_fast()
        conn = self.connection()
        conn.autocommit = False
        try:
            with conn:
                with conn.cursor(cursor_factory=RowDicts) as cur:
                    return work(cur)
        finally:
            if not conn.closed:
                conn.autocommit = True

    def close(self):
        self.drop()


class _Probe:
    """Is a hung database answering again? Asked without ever waiting: an
    asynchronous connection and one `SELECT 1`, moved on by each poll."""

    #: a probe that has not got through in this long is begun again (a
    #: connect lost on the way is never completed)
    RESTART_AFTER = 5.0

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.conn = None
        self.sent = None                 # the probe's cursor, once connected
        self.began = 0.0

    def answered(self, wait: float) -> bool:
        """Moved on as far as it goes within `wait` seconds: True once the
        database has answered the statement."""
        limit = time.monotonic() + wait
        try:
            if self.conn is None or time.monotonic() - self.began > self.RESTART_AFTER:
                self.start()
            while True:
                state = self.conn.poll()
                if state == psycopg2.extensions.POLL_OK:
                    if self.sent is not None:
                        return True
                    self.sent = self.conn.cursor()   # connected: now a statement
                    self.sent.execute("SELECT 1")
                    continue
                if not _ready(self.conn, state, max(0.0, limit - time.monotonic())):
                    return False
        except psycopg2.Error:
            self.close()                 # refused or broken: begun again next time
            return False

    def start(self):
        self.close()
        self.conn = psycopg2.connect(self.dsn, async_=1, application_name="kondge-probe")
        self.began = time.monotonic()

    def close(self):
        conn, self.conn, self.sent = self.conn, None, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass


class _Deadline:
    """Sets the thread's statement deadline for psycopg2's wait callback."""

    def __init__(self, limit_ms: int | None):
        self.limit_ms = limit_ms

    def __enter__(self):
        self.previous = getattr(_deadline, "at", None)
        _deadline.at = (None if self.limit_ms is None
                        else time.monotonic() + self.limit_ms / 1000)

    def __exit__(self, *exc):
        _deadline.at = self.previous
        return False

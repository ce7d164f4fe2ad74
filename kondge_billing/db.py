"""Database access: one connection per thread, autocommit, bounded waits.

The call path runs under FreeRADIUS's Python lock, so every wait here stalls
the whole server: statements are single (each is atomic on its own), carry
a statement timeout, and a dead database is noticed fast. After a
PostgreSQL restart a thread's old connection fails once: it is replaced and
the statement retried once. Every call-path statement is idempotent (keyed
by the call's identity), so the retry cannot move money twice.
"""

import threading
import time

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from .errors import Unavailable



def _refuse_float(value):
    raise TypeError(f"float {value!r} sent to the database; money must be Decimal")


# NUMERIC arrives as Decimal (psycopg2's default); a float is never sent.
psycopg2.extensions.register_adapter(float, _refuse_float)


class Database:
    """Connections for one process; safe to share between threads."""

    #: after a failed connect, fail fast for this long instead of waiting
    #: on the database again inside the next request.
    RETRY_CONNECT_AFTER = 1.0

    def __init__(self, dsn: str, timeout_ms: int = 2000, application_name: str = "kondge"):
        self.dsn = dsn
        self.timeout_ms = timeout_ms
        self.application_name = application_name
        self._local = threading.local()
        self._down_until = 0.0

    def _connect(self):
        if time.monotonic() < self._down_until:
            raise Unavailable("database unreachable (waiting before the next try)")
        try:
            conn = psycopg2.connect(
                self.dsn, connect_timeout=2, application_name=self.application_name,
                options=f"-c statement_timeout={self.timeout_ms}")
        except psycopg2.Error as exc:
            self._down_until = time.monotonic() + self.RETRY_CONNECT_AFTER
            raise Unavailable(f"cannot connect to the database: {str(exc).strip()}") from exc
        conn.autocommit = True
        return conn

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
        for attempt in (1, 2):
            conn = self.connection()
            try:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    return work(cur)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                broken = conn.closed != 0
                self.drop()
                if broken and attempt == 1:
                    continue
                raise Unavailable(f"database error: {str(exc).strip()}") from exc

    def transaction(self, work):
        """work(cursor) in one transaction on this thread's connection: all or nothing."""
        conn = self.connection()
        conn.autocommit = False
        try:
            with conn:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    return work(cur)
        finally:
            if not conn.closed:
                conn.autocommit = True

    def close(self):
        self.drop()

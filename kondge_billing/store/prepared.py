"""The call path's statements, parsed and planned once a connection.

Each packet of a call runs one or two statements of the same few shapes
(`SELECT * FROM kondge.radius_account(...)` with twenty values, ...). Sent
as text, PostgreSQL parses each one, looks its function up among the
functions of that name and plans it, every time: about 20 us of planning
alone a statement (pg_stat_statements, track_planning). A `Prepared`
statement is sent once a connection as `PREPARE name AS ...` and then
only as `EXECUTE name (values)`.

What can go wrong with a prepared statement, and what is done:

- the connection is new (the first statement, a reconnect after the
  database restarted, a standby that took over): the statements prepared
  are remembered for each connection object, so a new one prepares afresh;
- the function was replaced meanwhile by one with other result columns (a
  migration), or the session's prepared statements were dropped
  (`DEALLOCATE ALL`): PostgreSQL refuses the EXECUTE ("cached plan must not
  change result type", or "prepared statement ... does not exist") and
  nothing ran; the connection's statements are dropped, this one prepared
  again and run once more. Only outside a transaction (every call-path
  statement runs on its own): inside one, the refusal has aborted it and
  is raised.
"""

import re
import weakref

import psycopg2

#: the names prepared on each connection (a connection closed and dropped
#: takes its entry with it)
_done: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

#: SQLSTATEs of an EXECUTE refused before it ran: no such prepared statement;
#: a replaced function's new result columns (feature_not_supported, with
#: "cached plan must not change result type")
_GONE = "26000"
_CHANGED = "0A000"

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


class Prepared:
    """A statement `name` with named placeholders (`%(card_id)s`): each name
    becomes a `$n`, numbered in the order the names first appear; `.text`
    is the statement as written (for EXPLAIN)."""

    def __init__(self, name: str, text: str):
        self.name, self.text = name, text
        self.params = tuple(dict.fromkeys(_PLACEHOLDER.findall(text)))
        body = text % {p: f"${i}" for i, p in enumerate(self.params, 1)}
        self.prepare = f"PREPARE {name} AS {body}"
        self.execute = (f"EXECUTE {name} ({', '.join(['%s'] * len(self.params))})"
                        if self.params else f"EXECUTE {name}")

    def run(self, cur, values: dict):
        """Execute with `values` (a dict with every name of `params`) on `cur`."""
        args = tuple([values[p] for p in self.params])
        conn = cur.connection
        done = _done.get(conn)
        if done is None:
            done = _done[conn] = set()
        if self.name not in done:
            cur.execute(self.prepare)
            done.add(self.name)
        try:
            cur.execute(self.execute, args)
        except psycopg2.Error as exc:
            if not (conn.autocommit and refused_before_running(exc)):
                raise
            cur.execute("DEALLOCATE ALL")
            done.clear()
            cur.execute(self.prepare)
            done.add(self.name)
            cur.execute(self.execute, args)


def refused_before_running(exc: psycopg2.Error) -> bool:
    """The EXECUTE of a prepared statement refused because the statement is
    gone or its function changed its result columns (nothing ran)."""
    return exc.pgcode == _GONE or (
        exc.pgcode == _CHANGED and "cached plan must not change result type" in str(exc))

"""The audit log: who changed what, when, and how many. Owns audit_log's SQL.

The database writes every record itself, in the transaction of the change
it records (kondge.audit_record): the operators' functions
(sql/functions/op_*.sql) for cards, categories, batches, vouchers, callers
and access numbers, and triggers for gateways and tariff loads. So a
change without its record, or a record without its change, cannot be
committed, and nobody can change or remove a record (the log is
append-only, for the owner too). Each record names the operator the
command named and the database role that made the change, which a session
cannot choose.

This module names the operator, hands the operators' changes to those
functions, and reads the log.
"""

import os
import pwd
import re

import psycopg2

#: 1 to 64 characters, none a control character (as kondge.audit_record checks)
OPERATOR = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,64}\Z")

# The database's refusals of an operator's change: bad values (22), broken
# rules (23: a check, a unique or a missing key) and nothing found (P0002).
# Anything else (no privilege, a lost connection, a bug) stays what it is.
REFUSED_STATES = ("22", "23", "P0002")


class OperatorError(ValueError):
    pass


def login_user() -> str:
    """The user this process runs as: its real user id's name, not $USER or
    $LOGNAME, which any caller can set."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def operator_name(given: str | None = None, env=None) -> str:
    """Who does it: --operator, else KONDGE_OPERATOR, else the login user."""
    env = os.environ if env is None else env
    name = given or env.get("KONDGE_OPERATOR") or login_user()
    if not OPERATOR.match(name) or not name.strip():
        raise OperatorError(f"operator {name!r}: 1 to 64 printable characters naming who "
                            "does it (--operator NAME or KONDGE_OPERATOR)")
    return name


def acting(cur, operator: str | None):
    """Name the operator of this transaction for the audit triggers (gateway
    changes, tariff loads); outside a transaction the trigger names the
    database role instead."""
    cur.execute("SELECT set_config('kondge.operator', %s, true)", (operator_name(operator),))


def change(cur, refusal, sql: str, params=()):
    """Run one operator's function (it checks, changes and audits at once);
    the database's refusal of the change is raised as refusal(its message)."""
    try:
        cur.execute(sql, params)
    except psycopg2.Error as exc:
        if (exc.pgcode or "").startswith(REFUSED_STATES):
            raise refusal(exc.diag.message_primary) from None
        raise
    return cur.fetchall() if cur.description else []


def recent(cur, limit: int = 50, action: str | None = None) -> list[dict]:
    cur.execute("""SELECT id, at, operator, db_user, action, count, selection, details
                     FROM kondge.audit_log
                    WHERE %(action)s::text IS NULL OR action = %(action)s
                    ORDER BY id DESC LIMIT %(limit)s""", {"action": action, "limit": limit})
    return cur.fetchall()

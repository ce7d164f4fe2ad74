"""The audit log: who changed what, when, and how many. Owns audit_log's SQL."""

import getpass
import json
import os

from .money import to_decimal


def operator_name(given: str | None = None, env=None) -> str:
    """--operator, else KONDGE_OPERATOR, else the login user."""
    env = os.environ if env is None else env
    return given or env.get("KONDGE_OPERATOR") or getpass.getuser()


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(to_decimal(value)) if hasattr(value, "as_tuple") else str(value)


def record(cur, operator: str, action: str, count: int, selection=None, details=None) -> int:
    cur.execute("""INSERT INTO kondge.audit_log (operator, action, selection, details, count)
                   VALUES (%s, %s, %s, %s, %s) RETURNING id""",
                (operator, action, json.dumps(_jsonable(selection or {})),
                 json.dumps(_jsonable(details or {})), count))
    return cur.fetchone()["id"]


def recent(cur, limit: int = 50, action: str | None = None) -> list[dict]:
    cur.execute("""SELECT id, at, operator, action, count, selection, details
                     FROM kondge.audit_log
                    WHERE %(action)s::text IS NULL OR action = %(action)s
                    ORDER BY id DESC LIMIT %(limit)s""", {"action": action, "limit": limit})
    return cur.fetchall()

"""Tariffs in PostgreSQL: load a version, find versions, rate one call.

Owns the SQL of the tariff tables (sql/migrations/0003_tariffs.sql). A
load is one transaction (the caller's): a version is there whole or not at
all, and the running server rates new calls with it as soon as it commits
(it reads kondge.rating_context() per call).
"""

import hashlib
import io
import json
import re
from datetime import datetime

import psycopg2.extras

from . import audit
from ..rating.codec import rate_to_json, context_from_json
from ..rating.engine import RatingContext
from ..progress import quiet
from ..rating.resolve import rules_json
from ..rating.tariff_file import TariffDoc

COPY_CHUNK = 100000

# The call path embeds this call in its own single query.
RATING_CONTEXT_CALL = (
    "kondge.rating_context(%(category)s, %(destination)s, %(caller)s, %(access)s, "
    "%(gateway_id)s, %(at)s, %(tariff_id)s, %(version_id)s)::text")


def load(cur, doc: TariffDoc, source_name: str = "", progress=quiet,
         operator: str | None = None) -> dict:
    """Write `doc` as the next version of its tariff; return what was loaded.

    `cur` is a dict cursor inside the caller's transaction. The load is an
    audit record naming operator, written by the database with the version
    (sql/functions/tariff_version_audited.sql)."""
    audit.acting(cur, operator)
    cur.execute("INSERT INTO kondge.tariff (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                (doc.name,))
    cur.execute("SELECT id FROM kondge.tariff WHERE name = %s FOR UPDATE", (doc.name,))
    tariff_id = _one(cur)["id"]
    cur.execute("SELECT EXISTS (SELECT 1 FROM kondge.tariff WHERE is_default) AS has_default")
    if doc.default or not _one(cur)["has_default"]:
        cur.execute("UPDATE kondge.tariff SET is_default = false WHERE is_default AND id <> %s",
                    (tariff_id,))
        cur.execute("UPDATE kondge.tariff SET is_default = true WHERE id = %s", (tariff_id,))
    cur.execute("""INSERT INTO kondge.tariff_version
                       (tariff_id, version, valid_from, currency, decimals, rounding, timezone,
                        rules, source, source_name, sha256)
                   SELECT %(tariff_id)s, coalesce(max(version), 0) + 1, %(valid_from)s,
                          %(currency)s, %(decimals)s, %(rounding)s, %(timezone)s, %(rules)s,
                          %(source)s, %(source_name)s, %(sha)s
                     FROM kondge.tariff_version WHERE tariff_id = %(tariff_id)s
                   RETURNING id, version""",
                {"tariff_id": tariff_id, "valid_from": doc.valid_from, "currency": doc.currency,
                 "decimals": doc.decimals, "rounding": doc.rounding, "timezone": doc.timezone,
                 "rules": json.dumps(rules_json(doc)), "source": doc.source,
                 "source_name": source_name,
                 "sha": hashlib.sha256(doc.source.encode()).hexdigest()})
    row = _one(cur)
    version_id = row["id"]
    dest_ids = _insert_destinations(cur, version_id, list(doc.destinations))
    bar = progress("loading prefixes", len(doc.prefixes))
    _copy_prefixes(cur, version_id, doc.prefixes, dest_ids, bar)
    bar.finish()
    # fresh statistics, so the planner keeps probing the primary key
    cur.execute("ANALYZE kondge.tariff_prefix")
    rates = 0
    for plan in doc.plans:
        cur.execute("""INSERT INTO kondge.tariff_plan (version_id, name, priority, categories,
                                                      access_prefixes, gateways, caller_prefixes)
                       VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                    (version_id, plan.name, plan.priority, _array(plan.categories),
                     _array(plan.access), _array(plan.gateways), _array(plan.callers)))
        plan_id = _one(cur)["id"]
        psycopg2.extras.execute_values(
            cur, "INSERT INTO kondge.tariff_rate (plan_id, destination_id, band, rate) VALUES %s",
            [(plan_id, dest_ids[d], band, json.dumps(rate_to_json(r)))
             for (d, band), r in plan.rates.items()], page_size=1000)
        rates += len(plan.rates)
    return {"tariff": doc.name, "tariff_id": tariff_id, "version": row["version"],
            "version_id": version_id, "valid_from": doc.valid_from,
            "destinations": len(dest_ids), "prefixes": len(doc.prefixes),
            "plans": len(doc.plans), "rates": rates}


def _one(cur):
    return cur.fetchone()


def _array(values):
    return list(values) if values is not None else None


def _insert_destinations(cur, version_id, names) -> dict[str, int]:
    rows = psycopg2.extras.execute_values(
        cur, "INSERT INTO kondge.tariff_destination (version_id, name) VALUES %s "
             "RETURNING id, name", [(version_id, n) for n in names], page_size=1000, fetch=True)
    return {r["name"]: r["id"] for r in rows}


def _copy_prefixes(cur, version_id, prefixes: dict, dest_ids: dict, bar):
    items = list(prefixes.items())
    for start in range(0, len(items), COPY_CHUNK):
        chunk = items[start:start + COPY_CHUNK]
        buf = io.StringIO("".join(f"{version_id}\t{p}\t{dest_ids[d]}\n" for p, d in chunk))
        cur.copy_expert("COPY kondge.tariff_prefix (version_id, prefix, destination_id) "
                        "FROM STDIN", buf)
        bar.advance(len(chunk))


def versions(cur, name: str | None = None) -> list[dict]:
    cur.execute("""SELECT t.name AS tariff, v.version, v.id AS version_id, v.valid_from,
                          v.currency, v.loaded_at, v.source_name, t.is_default,
                          (SELECT count(*) FROM kondge.tariff_destination d
                            WHERE d.version_id = v.id) AS destinations
                     FROM kondge.tariff_version v JOIN kondge.tariff t ON t.id = v.tariff_id
                    WHERE %(name)s::text IS NULL OR t.name = %(name)s
                    ORDER BY t.name, v.version""", {"name": name})
    return cur.fetchall()


REF = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})@([0-9]+)\Z")


def is_version_ref(text: str) -> bool:
    """NAME@VERSION names a loaded version (anything else is a file)."""
    return bool(REF.match(text))


def version_source(cur, ref: str) -> dict | None:
    m = REF.match(ref)
    cur.execute("""SELECT v.id AS version_id, v.version, v.source, t.name AS tariff
                     FROM kondge.tariff_version v JOIN kondge.tariff t ON t.id = v.tariff_id
                    WHERE t.name = %s AND v.version = %s""", (m[1], int(m[2])))
    return cur.fetchone()


def tariff_id(cur, name: str) -> int | None:
    """The id of the tariff called name, or None."""
    cur.execute("SELECT id FROM kondge.tariff WHERE name = %s", (name,))
    row = cur.fetchone()
    return row["id"] if row else None


def gateway_id(cur, name: str) -> int | None:
    cur.execute("SELECT id FROM kondge.gateway WHERE name = %s AND removed_at IS NULL", (name,))
    row = cur.fetchone()
    return row["id"] if row else None


def rating_context(cur, destination: str, at: datetime, category=None, caller=None,
                   access=None, gateway_id=None, tariff_id=None,
                   version_id=None) -> RatingContext | None:
    """What the server would rate this call with (kondge.rating_context())."""
    cur.execute(f"SELECT {RATING_CONTEXT_CALL} AS rating",
                {"category": category, "destination": destination, "caller": caller,
                 "access": access, "gateway_id": gateway_id, "at": at, "tariff_id": tariff_id,
                 "version_id": version_id})
    return context_from_json(cur.fetchone()["rating"])


def stored_calls(cur, start: datetime, end: datetime) -> list[dict]:
    """The CDRs of calls connected in [start, end), with what re-rating needs."""
    cur.execute("""SELECT d.id, d.connect_time, d.duration, d.destination, d.caller, d.cost,
                          d.charge, d.currency, d.tariff_version_id AS version_id,
                          coalesce(d.category, c.category) AS category, g.name AS gateway,
                          d.access_number
                     FROM kondge.cdr d
                     JOIN kondge.gateway g ON g.id = d.gateway_id
                     LEFT JOIN kondge.card c ON c.id = d.card_id
                    WHERE d.connect_time >= %s AND d.connect_time < %s
                    ORDER BY d.id""", (start, end))
    return cur.fetchall()

"""Proof, after the fact, that every answered accounting record was stored.

Each FreeRADIUS process that runs the hook journals every Accounting-Request
it answered (mods-available/kondge_answered: `$KONDGE_RUN_DIR/answered/`,
one file a day). `check` reads the journals and finds each record's leg in
the database by the call's identity (gateway, call id, Acct-Session-Id,
and the Start or Stop it carried); a record not stored yet must be waiting
in a spool, set aside in kondge.unprocessed_record or in a quarantine. A
record with no or an unknown Acct-Status-Type is never stored as a call:
it must be set aside (replayed or not: a replay of it stores nothing) or
waiting, known by its sender and content (request.AccountingRecord.digest).
Anything else is lost: the operator is told which, with the record.

The balance views (reports.reconciliation) prove that balances match the
ledger; this proves that nothing answered fell between the gateway and the
ledger.
"""

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from ..errors import UnknownGateway
from .request import accounting_record
from ..calls.service import call_identity
from .spool import QUARANTINE, parse_detail, pending

JOURNAL = "answered"
STATUSES = ("start", "interim", "stop")

MISSING = """
SELECT i.n FROM unnest(%s::integer[], %s::text[], %s::text[], %s::text[])
              WITH ORDINALITY AS i(gateway_id, call_id, session, status, n)
 WHERE NOT EXISTS (
       SELECT 1 FROM kondge.call_leg l
        WHERE l.gateway_id = i.gateway_id AND l.call_id = i.call_id
          AND l.acct_session_id = i.session
          AND CASE i.status WHEN 'start' THEN l.start_received_at IS NOT NULL
                            WHEN 'stop' THEN l.stop_received_at IS NOT NULL
                            ELSE true END)
"""


@dataclass
class Report:
    answered: int = 0            # records journalled as answered
    stored: int = 0
    waiting: int = 0             # in a spool or a quarantine: the supervisor stores them
    parked: int = 0              # in kondge.unprocessed_record (kondge accounting parked)
    ignored: int = 0             # Accounting-On/Off: nothing to store
    unverifiable: int = 0        # no call identity to look for (flagged call-id-missing)
    missing: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing


def journal_files(run_dirs, since: date | None) -> list[Path]:
    found = []
    for run_dir in run_dirs:
        folder = run_dir / JOURNAL
        for path in sorted(folder.glob("detail-*")) if folder.is_dir() else ():
            day = path.name[len("detail-"):len("detail-") + 8]
            if since is None or (day.isdigit() and day >= since.strftime("%Y%m%d")):
                found.append(path)
    return found


def _identity(gateways, pairs):
    rec = accounting_record(pairs, datetime.now(timezone.utc))
    if rec.status == "unknown":
        return ("unknown", rec.gateway_address, rec.digest), "unknown"
    if rec.status not in STATUSES:
        return None, "ignored"
    try:
        gateway = gateways.for_accounting(rec.gateway_address)
    except UnknownGateway:
        return None, "unverifiable"
    call_id, _has_conf, flags = call_identity(gateway, rec)
    if "call-id-missing" in flags:
        return None, "unverifiable"
    return (gateway.id, call_id, rec.acct_session_id or "", rec.status), None


def _held(run_dirs, parked_pairs, gateways) -> set:
    """Identities of records not stored yet but kept: in a spool, a quarantine
    or kondge.unprocessed_record."""
    import json
    kept = set()
    for run_dir in run_dirs:
        for path in pending(run_dir / "spool"):
            for line in path.read_bytes().splitlines():
                try:
                    pairs = tuple(tuple(p) for p in json.loads(line)["pairs"])
                except (ValueError, KeyError, TypeError):
                    continue
                ident, _ = _identity(gateways, pairs)
                kept.add(("waiting", ident))
        q = run_dir / QUARANTINE
        for path in sorted(q.glob("detail*")) if q.is_dir() else ():
            if path.suffix != ".replayed":
                for pairs in parse_detail(path.read_bytes()):
                    kept.add(("waiting", _identity(gateways, pairs)[0]))
    for pairs in parked_pairs:
        kept.add(("parked", _identity(gateways, tuple(tuple(p) for p in pairs))[0]))
    return kept


def _tally(report: Report, held: set, ident, path, pairs, which: dict):
    """A journalled record not found stored: waiting, set aside, or missing
    (`which` names it: gateway, call, session, status)."""
    if ("waiting", ident) in held:
        report.waiting += 1
    elif ("parked", ident) in held:
        report.parked += 1
    else:
        report.missing.append(dict(which, journal=str(path), pairs=[list(p) for p in pairs]))


def check(cur, run_dirs, gateways, since: date | None = None) -> Report:
    report = Report()
    records, unknown = [], []
    for path in journal_files(run_dirs, since):
        for pairs in parse_detail(path.read_bytes()):
            report.answered += 1
            ident, why = _identity(gateways, pairs)
            if why == "unknown":
                unknown.append((ident, path, pairs))
                continue
            if ident is None:
                if why == "ignored":
                    report.ignored += 1
                else:
                    report.unverifiable += 1
                continue
            records.append((ident, path, pairs))
    missing = set()
    for start in range(0, len(records), 10000):
        chunk = records[start:start + 10000]
        cur.execute(MISSING, ([r[0][0] for r in chunk], [r[0][1] for r in chunk],
                              [r[0][2] for r in chunk], [r[0][3] for r in chunk]))
        missing |= {start + row["n"] - 1 for row in cur.fetchall()}
    if missing or unknown:
        cur.execute("SELECT pairs, replayed_at FROM kondge.unprocessed_record")
        parked = cur.fetchall()
        held = _held(run_dirs, [row["pairs"] for row in parked if row["replayed_at"] is None],
                     gateways)
        # a record set aside for its status stays set aside once replayed
        replayed = (_identity(gateways, tuple(tuple(p) for p in row["pairs"]))
                    for row in parked if row["replayed_at"] is not None)
        held |= {("parked", ident) for ident, why in replayed if why == "unknown"}
    for ident, path, pairs in unknown:
        _tally(report, held, ident, path, pairs, {"gateway_id": ident[1], "call_id": None,
                                                  "acct_session_id": None, "status": "unknown"})
    for i, (ident, path, pairs) in enumerate(records):
        if i not in missing:
            report.stored += 1
        else:
            _tally(report, held, ident, path, pairs, dict(zip(
                ("gateway_id", "call_id", "acct_session_id", "status"), ident)))
    return report


def prune(run_dirs, days: int, now: float | None = None) -> int:
    """Remove journal files older than `days` days; return how many."""
    limit = date.fromtimestamp(now or time.time()) - timedelta(days=days)
    gone = 0
    for path in journal_files(run_dirs, None):
        day = path.name[len("detail-"):len("detail-") + 8]
        if day.isdigit() and day < limit.strftime("%Y%m%d"):
            path.unlink(missing_ok=True)
            gone += 1
    return gone

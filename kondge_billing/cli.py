"""kondge: the operator's command-line tool.

Exit status: 0 done; 1 refused (bad value, not found, already exists);
2 wrong usage; 3 the database or the service is not available.
"""

import argparse
import json
import re
import sys
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg2

from . import __version__
from . import (audit, batches, callers, calls, cards, categories, config, currencies,
               gateways, issuance, reports, sessions, stack, statements, vouchers, xlsx)
from .money import MoneyError, operator_amount, to_decimal
from .tariffs import csv_import, diff, engine, resolve, schema, store
from .tariffs.progress import Progress
from .attrs import DIALECTS
from .db import Database
from .errors import Unavailable
from .numbers import CLEAN as NUMBER_PUNCTUATION, NumberFormat
from .pins import PinKeyError, load_key
from .service import Billing
from .progress import factory as progress_factory

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


class Refused(Exception):
    """An operator request that cannot be done as asked (exit 1)."""


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def emit(args, data, text_lines):
    if args.json:
        print(json.dumps(_plain(data), indent=2))
    else:
        for line in text_lines:
            print(line)


def table(rows, columns) -> list[str]:
    if not rows:
        return ["(none)"]
    def cell(value):
        if value is None:
            return ""
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(_plain(value))
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*columns), fmt.format(*("-" * w for w in widths))] + [
        fmt.format(*r) for r in cells]


def _db(settings) -> Database:
    return Database(settings.dsn, timeout_ms=60000, application_name="kondge-cli")


def _in_transaction(settings, work):
    """Run work(cur) in one transaction (the CLI's changes are all-or-nothing)."""
    db = _db(settings)
    try:
        return db.transaction(work)
    finally:
        db.close()


# --- server ------------------------------------------------------------------

def cmd_server_run(args, s):
    return stack.run_foreground(s, Path(args.ready_file) if args.ready_file else None)


def cmd_server_start(args, s):
    return stack.start_background(s)


def cmd_server_stop(args, s):
    return stack.stop_background(s)


def cmd_server_db_stop(args, s):
    stack.db_stop(s)
    emit(args, {"postgresql": False}, [
        "PostgreSQL stopped; the supervisor leaves it stopped until 'kondge server db-start'.",
        "Meanwhile Access-Requests get no answer and accounting goes to the spool."])
    return EXIT_OK


def cmd_server_db_start(args, s):
    stack.db_start(s)
    emit(args, {"postgresql": True}, ["PostgreSQL started; the spool drains by itself."])
    return EXIT_OK


def cmd_server_status(args, s):
    st = stack.status(s)
    expected = s.workers if s.workers > 1 else 0
    up = bool(st["supervisor_pid"] and st["postgresql"] and st["freeradius_pid"]
              and len(st["workers"]) == expected)
    role = "front end" if expected else "serving the gateways"
    lines = [
        f"supervisor: {'pid ' + str(st['supervisor_pid']) if st['supervisor_pid'] else 'not running'}",
        f"PostgreSQL: {'running' if st['postgresql'] else 'not running'}",
        f"FreeRADIUS {role}: "
        f"{'pid ' + str(st['freeradius_pid']) if st['freeradius_pid'] else 'not running'}"
        f" ({st['listen']} auth {st['auth_port']}, acct {st['acct_port']})"]
    if expected:
        running = ", ".join(f"{name} pid {pid}" for name, pid in sorted(st["workers"].items()))
        lines.append(f"FreeRADIUS workers: {len(st['workers'])} of {expected} running"
                     + (f" ({running})" if running else ""))
    emit(args, st, lines)
    return EXIT_OK if up else EXIT_UNAVAILABLE


# --- gateways ------------------------------------------------------------------

def cmd_gateways_add(args, s):
    gw = _in_transaction(s, lambda cur: gateways.add(
        cur, args.name, args.address, args.secret, args.dialect, args.message_authenticator,
        args.billed_leg, args.prepaid_billing_model))
    served = _served(s, gw.revision)
    emit(args, dict(gw.public(), served=served), [
        f"gateway {gw.name} added: {gw.address}, dialect {gw.dialect}, "
        f"message authenticator {gw.message_authenticator}, billed leg {gw.billed_leg}",
        _served_line(s, served)])
    return EXIT_OK if served is not False else EXIT_UNAVAILABLE


def _served(s, revision):
    """Wait until the running server (if any) serves the gateway table at `revision`."""
    return stack.apply_gateway_change(s, revision)


def _served_line(s, served) -> str:
    if served is None:
        return "no server is running here: it serves the change when it starts"
    if served:
        return "the running server serves the change now"
    return (f"the change is stored, but the running server did not apply it in time; "
            f"see {s.log_dir / 'supervisor.log'}")


def cmd_gateways_list(args, s):
    rows = [gw.public() for gw in _in_transaction(s, gateways.all_gateways)]
    emit(args, rows, table(rows, ["name", "address", "dialect", "message_authenticator",
                                  "billed_leg", "prepaid_billing_model"]))
    return EXIT_OK


def cmd_gateways_remove(args, s):
    revision = _in_transaction(s, lambda cur: gateways.remove(cur, args.name))
    if revision is None:
        raise Refused(f"no gateway named {args.name}; see 'kondge gateways list'")
    served = _served(s, revision)
    emit(args, {"removed": args.name, "served": served}, [
        f"gateway {args.name} removed (its call records stay)", _served_line(s, served)])
    return EXIT_OK if served is not False else EXIT_UNAVAILABLE


# --- cards -----------------------------------------------------------------------

def cmd_cards_add(args, s):
    key = load_key(s.pin_key_file)
    card = _in_transaction(s, lambda cur: cards.add(
        cur, key, args.number, args.pin, args.balance, args.currency, category=args.category,
        language=args.language, expires_at=args.expires, check_digit=s.card_check_digit,
        tariff=args.tariff, operator=args.operator))
    tariff = f"tariff {card['tariff']}" if card["tariff"] else "no tariff of its own"
    emit(args, card, [f"card {card['number']} added: {card['balance']} {card['currency']}, "
                      f"category {card['category']}, language {card['language']}, {tariff}"])
    return EXIT_OK


def _fields(record) -> list[str]:
    return [f"{k}: {_plain(v) if v is not None else ''}" for k, v in record.items()]


def _show_one(args, s, lookup, missing):
    """Print the one record lookup(cur) finds, or refuse with missing."""
    record = _in_transaction(s, lookup)
    if record is None:
        raise Refused(missing)
    emit(args, record, _fields(record))
    return EXIT_OK


def cmd_cards_show(args, s):
    return _show_one(args, s, lambda cur: cards.show(cur, args.number), f"no card {args.number}")


def _new_file(path_text, suffix):
    path = Path(path_text)
    if path.suffix.lower() != suffix:
        raise Refused(f"{path}: the file name must end in {suffix}")
    if not path.parent.is_dir():
        raise Refused(f"{path.parent}: no such folder")
    return path


# --- categories -------------------------------------------------------------------

def _category_fields(args) -> dict:
    fields = {f: getattr(args, f) for f in categories.FIELDS}
    fields["tariff"] = categories.NO_TARIFF if getattr(args, "no_tariff", False) else args.tariff
    return dict(fields, operator=args.operator)


def cmd_categories_add(args, s):
    c = _in_transaction(s, lambda cur: categories.add(cur, args.name, **_category_fields(args)))
    emit(args, c, [f"category {c['name']} added"] + _fields(c))
    return EXIT_OK


def cmd_categories_modify(args, s):
    c = _in_transaction(s, lambda cur: categories.modify(cur, args.name,
                                                          **_category_fields(args)))
    emit(args, c, [f"category {c['name']} changed (cards issued before keep their "
                   "expiry and balance)"] + _fields(c))
    return EXIT_OK


def cmd_categories_list(args, s):
    rows = _in_transaction(s, categories.all_categories)
    emit(args, rows, table(rows, ["name", "kind", "face_value", "currency", "validity",
                                  "valid_until", "valid_days", "language", "max_calls",
                                  "billing", "credit_limit", "pin_length", "tariff"]))
    return EXIT_OK


def cmd_categories_show(args, s):
    return _show_one(args, s, lambda cur: categories.show(cur, args.name),
                     f"no category {args.name}; see 'kondge categories list'")


# --- batch issuance, batch changes --------------------------------------------------

def cmd_cards_issue(args, s):
    out = _new_file(args.out, ".xlsx")
    if out.exists():
        raise Refused(f"{out} exists; the PINs of another batch may be in it: "
                      "choose another --out")
    key = load_key(s.pin_key_file)
    operator = audit.operator_name(args.operator)
    progress = progress_factory(args.progress)

    def work(cur):
        batch = issuance.issue(cur, key, args.category, args.count, args.batch, operator,
                               number_length=args.number_length, active=not args.inactive,
                               progress=progress, tariff=args.tariff)
        # Written inside the transaction: if the file cannot be written,
        # no card exists whose PIN nobody has seen.
        bar = progress("writing", batch["count"])
        xlsx.write_table(out, batch["batch"], issuance.PRINT_COLUMNS,
                         issuance.print_rows(batch), bar)
        bar.finish()
        return batch
    batch = _in_transaction(s, work)
    summary = {k: v for k, v in batch.items() if k != "pieces"}
    summary["file"] = str(out)
    emit(args, summary, [
        f"batch {batch['batch']}: {batch['count']} {batch['kind']}s of category "
        f"{batch['category']}, {batch['face_value']} {batch['currency']} each, {batch['status']}",
        f"numbers and PINs: {out} (mode 0600; the only copy of the PINs: print it, "
        "then keep it safe or destroy it)"])
    return EXIT_OK


def _range(text, kind):
    first, sep, last = (text or "").partition("-")
    if not sep or not first.isdigit() or not last.isdigit():
        raise Refused(f"{kind}: FIRST-LAST, e.g. 100001-100500")
    return first, last


def _selection(args) -> batches.Selection:
    serial_from = serial_to = number_from = number_to = None
    if args.serials:
        serial_from, serial_to = (int(x) for x in _range(args.serials, "--serials"))
    if args.number_range:
        number_from, number_to = _range(args.number_range, "--number-range")
    numbers = None
    if args.numbers:
        text = (Path(args.numbers[1:]).read_text() if args.numbers.startswith("@")
                else args.numbers)
        numbers = tuple(n for n in text.replace(",", " ").split() if n)
    return batches.Selection(batch=args.batch, serial_from=serial_from, serial_to=serial_to,
                             number_from=number_from, number_to=number_to, numbers=numbers,
                             category=args.category, status=args.status,
                             kind="voucher" if args.vouchers else "card")


def _batch_change(args, s, change):
    selection = _selection(args)
    operator = audit.operator_name(args.operator)
    result = _in_transaction(s, lambda cur: change(cur, selection, operator))
    what = "vouchers" if args.vouchers else "cards"
    emit(args, result, [f"{result['action']}: {result['changed']} of {result['matched']} "
                        f"selected {what} changed (by {operator}; see 'kondge audit list')"])
    return EXIT_OK


def cmd_cards_status(args, s):
    return _batch_change(args, s, lambda cur, sel, op: batches.change_status(
        cur, sel, args.action, op))


def cmd_cards_extend(args, s):
    return _batch_change(args, s, lambda cur, sel, op: batches.extend(
        cur, sel, op, days=args.days, until=args.until))


def cmd_cards_move(args, s):
    return _batch_change(args, s, lambda cur, sel, op: batches.move(cur, sel, op, args.to))


def cmd_cards_topup(args, s):
    op_id = args.operation_id or batches.new_operation_id()
    code = _batch_change(args, s, lambda cur, sel, op: batches.top_up(
        cur, sel, op, args.amount, args.currency, op_id))
    if not args.json:
        print(f"operation id {op_id}: repeating the command with --operation-id {op_id} "
              "credits nobody twice")
    return code


def cmd_cards_refill(args, s):
    key = load_key(s.pin_key_file)
    operator = audit.operator_name(args.operator)
    result = _in_transaction(s, lambda cur: vouchers.refill(
        cur, key, args.card, args.voucher, args.pin, operator))
    if "refused" in result:         # a wrong PIN: its count is committed, then refused
        raise Refused(result["refused"])
    emit(args, result, [f"card {result['card']} refilled with {result['amount']} "
                        f"{result['currency']} from voucher {result['voucher']}; "
                        f"balance {result['balance']}"])
    return EXIT_OK


def cmd_cards_expire(args, s):
    operator = audit.operator_name(args.operator)
    result = _in_transaction(s, lambda cur: cards.expire(cur, operator))
    value = ", ".join(f"{v} {c}" for c, v in sorted(result["value"].items())) or "nothing"
    emit(args, result, [f"{result['cards']} expired cards emptied; value expired: {value}"])
    return EXIT_OK


def cmd_cards_stats(args, s):
    rows = _in_transaction(s, lambda cur: reports.card_stats(cur, args.by, args.batch))
    if args.xlsx:
        out = _new_file(args.xlsx, ".xlsx")
        xlsx.write_table(out, f"card_stats_by_{args.by}", reports.STATS_COLUMNS,
                         ([r[c] for c in reports.STATS_COLUMNS] for r in rows))
    emit(args, rows, table(rows, reports.STATS_COLUMNS)
         + ([f"written to {args.xlsx}"] if args.xlsx else []))
    return EXIT_OK


def cmd_cards_statement(args, s):
    out = _new_file(args.out, ".pdf")
    st = _in_transaction(s, lambda cur: statements.statement(cur, args.number, args.start,
                                                             args.end))
    statements.render_pdf(st, out)
    summary = {k: st[k] for k in ("opening", "charges", "credits", "debits", "closing")}
    summary.update(calls=len(st["calls"]), file=str(out))
    emit(args, summary, [
        f"statement of card {args.number}: {len(st['calls'])} calls, charges {st['charges']}, "
        f"opening {st['opening']}, closing {st['closing']} {st['card']['currency']}",
        f"written to {out}"])
    return EXIT_OK


def cmd_vouchers_show(args, s):
    return _show_one(args, s, lambda cur: vouchers.show(cur, args.number),
                     f"no voucher {args.number}")


def cmd_audit_list(args, s):
    rows = _in_transaction(s, lambda cur: audit.recent(cur, args.limit, args.action))
    emit(args, rows, table(rows, ["id", "at", "operator", "action", "count", "selection",
                                  "details"]))
    return EXIT_OK


# --- CDRs ------------------------------------------------------------------------

def _cdrs(args, s, limit):
    return _in_transaction(s, lambda cur: calls.list_cdrs(
        cur, args.card, limit, batch=args.batch, gateway=args.gateway,
        destination=args.destination, since=args.start, until=args.end, flag=args.flag))


def cmd_cdrs_list(args, s):
    rows = _cdrs(args, s, args.limit)
    emit(args, rows, table(rows, ["id", "connect_time", "gateway", "card_number", "caller",
                                  "destination", "duration", "charge", "currency", "flags"]))
    return EXIT_OK


def cmd_gateways_modify(args, s):
    changes = {k: getattr(args, k) for k in (
        "country_code", "international_prefix", "national_prefix", "billed_leg",
        "message_authenticator", "prepaid_billing_model", "accounting_start")
        if getattr(args, k) is not None}
    if args.language_map is not None:
        changes["language_map"] = args.language_map
    if not changes:
        raise Refused("nothing to change; see 'kondge gateways modify --help'")
    gw = _in_transaction(s, lambda cur: gateways.modify(cur, args.name, **changes))
    served = _served(s, gw.revision)
    emit(args, dict(gw.public(), served=served), [f"gateway {gw.name} changed: " + ", ".join(
        f"{k} {getattr(gw, k)}" for k in changes), _served_line(s, served)])
    return EXIT_OK if served is not False else EXIT_UNAVAILABLE


def _language_map(text):
    pairs = {}
    for item in filter(None, text.split(",")):
        ours, sep, theirs = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: write ours=theirs, e.g. zh=ch")
        pairs[ours.strip()] = theirs.strip()
    return pairs


# --- callers and access numbers ---------------------------------------------------

def _gateway_format(s, name):
    if name is None:
        return NumberFormat()
    found = [gw for gw in _in_transaction(s, gateways.all_gateways) if gw.name == name]
    if not found:
        raise Refused(f"no gateway named {name}; see 'kondge gateways list'")
    return found[0].number_format


def cmd_callers_bind(args, s):
    fmt = _gateway_format(s, args.gateway)
    numbers = _in_transaction(s, lambda cur: callers.bind(cur, args.card, args.numbers, fmt))
    emit(args, {"card": args.card, "callers": numbers},
         [f"bound to card {args.card}: {', '.join(numbers)}"])
    return EXIT_OK


def cmd_callers_unbind(args, s):
    fmt = _gateway_format(s, args.gateway)
    count = _in_transaction(s, lambda cur: callers.unbind(cur, args.numbers, fmt))
    if count == 0:
        raise Refused("none of these numbers was bound")
    emit(args, {"unbound": count}, [f"{count} caller number(s) unbound"])
    return EXIT_OK


def cmd_callers_list(args, s):
    rows = _in_transaction(s, lambda cur: callers.list_callers(cur, args.card))
    emit(args, rows, table(rows, ["caller", "card", "auto_bound", "created_at"]))
    return EXIT_OK


def _access_change(args, s, action):
    row = _in_transaction(s, action)
    emit(args, row, [f"access number {row['number']}: login {row['login']}, language "
                     f"{row['language'] or '(the card’s)'}, prompt id {row['prompt_id']}"])
    return EXIT_OK


def cmd_access_add(args, s):
    return _access_change(args, s, lambda cur: callers.add_access_number(
        cur, args.number, args.description, args.login, args.language, args.prompt_id))


def cmd_access_modify(args, s):
    return _access_change(args, s, lambda cur: callers.modify_access_number(
        cur, args.number, description=args.description, login=args.login,
        language=args.language, prompt_id=args.prompt_id))


def cmd_access_list(args, s):
    rows = _in_transaction(s, callers.list_access_numbers)
    emit(args, rows, table(rows, ["number", "login", "language", "prompt_id", "description"]))
    return EXIT_OK


# --- live calls ------------------------------------------------------------------

def cmd_sessions_list(args, s):
    rows = _in_transaction(s, lambda cur: sessions.live(cur, args.card))
    emit(args, rows, table(rows, ["card", "caller", "destination", "gateway", "state",
                                  "started_at", "granted_seconds", "elapsed", "amount"]))
    return EXIT_OK


def cmd_sessions_sweep(args, s):
    db = _db(s)
    try:
        billing = Billing.from_settings(s, db, gateways.all_gateways)
        result = billing.sweep(s.session_grace if args.grace is None else args.grace)
    finally:
        db.close()
    emit(args, result, [f"{result['holds_lapsed']} unstarted hold(s) lapsed, "
                        f"{result['sessions_closed']} call(s) without Stop closed"])
    return EXIT_OK


def cmd_cdrs_export(args, s):
    out = _new_file(args.out, ".xlsx")
    rows = _cdrs(args, s, args.limit)
    count = xlsx.write_table(out, "cdrs", calls.CDR_COLUMNS,
                             ([r[c] for c in calls.CDR_COLUMNS] for r in reversed(rows)))
    emit(args, {"cdrs": count, "file": str(out)}, [f"{count} CDRs written to {out} (times in UTC)"])
    return EXIT_OK

# --- tariffs -----------------------------------------------------------------------

def _parsed(path) -> "schema.TariffDoc":
    doc, problems = schema.parse_file(path)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        raise Refused(f"{path}: {len(problems)} problem(s); nothing done")
    return doc


def cmd_tariffs_validate(args, s):
    doc, problems = schema.parse_file(args.file)
    summary = {"file": args.file, "valid": not problems, "problems": problems}
    if doc is not None and not problems:
        summary.update(tariff=doc.name, destinations=len(doc.destinations),
                       prefixes=len(doc.prefixes), plans=len(doc.plans))
    if args.json:
        print(json.dumps(_plain(summary), indent=2))
    elif problems:
        for line in problems:
            print(line, file=sys.stderr)
    else:
        print(f"{args.file}: ok: tariff {doc.name}, {len(doc.destinations)} destinations, "
              f"{len(doc.prefixes)} prefixes, {len(doc.plans)} plans")
    return EXIT_REFUSED if problems else EXIT_OK


def cmd_tariffs_load(args, s):
    doc = _parsed(args.file)
    loaded = _in_transaction(s, lambda cur: store.load(cur, doc, str(args.file), Progress))
    emit(args, loaded, [
        f"tariff {loaded['tariff']} version {loaded['version']} loaded: "
        f"{loaded['destinations']} destinations, {loaded['prefixes']} prefixes, "
        f"{loaded['plans']} plans, {loaded['rates']} rates",
        f"it applies to calls from {loaded['valid_from'].isoformat()} on; the running server "
        "uses it for new calls without a restart"])
    return EXIT_OK


def cmd_tariffs_list(args, s):
    rows = _in_transaction(s, lambda cur: store.versions(cur, args.name))
    emit(args, rows, table(rows, ["tariff", "version", "valid_from", "currency", "destinations",
                                  "is_default", "loaded_at", "source_name"]))
    return EXIT_OK


def _doc_for(s, ref):
    if store.is_version_ref(ref) and not Path(ref).exists():
        found = _in_transaction(s, lambda cur: store.version_source(cur, ref))
        if found is None:
            raise Refused(f"no loaded version {ref}; see 'kondge tariffs list'")
        doc, problems = schema.parse(found["source"], ref)
        if problems:
            raise Refused(f"{ref}: its stored file no longer validates: {problems[0]}")
        return doc
    return _parsed(ref)


def _period(text):
    start, sep, end = text.partition("..")
    if not sep:
        raise argparse.ArgumentTypeError("a period is FROM..TO, e.g. 2026-01-01..2026-02-01")
    return _datetime(start), _datetime(end)


def cmd_tariffs_diff(args, s):
    old, new = _doc_for(s, args.old), _doc_for(s, args.new)
    changes = diff.diff_docs(old, new)
    lines = [f"--- {args.old}", f"+++ {args.new}"]
    lines += [f"{c['what']}: {c['old']} -> {c['new']}" for c in changes["settings"]]
    lines += [f"destination {c['destination']}: {c['change']} (+{c['prefixes_added']} "
              f"-{c['prefixes_removed']} prefixes, e.g. {', '.join(c['examples'])})"
              for c in changes["destinations"]]
    lines += [f"plan {c['plan']}: {c['change']}" + (f" {c['old']} -> {c['new']}" if "old" in c
                                                    else "") for c in changes["plans"]]
    lines += [f"rate {c['plan']} / {c['destination']} / band {c['band']}: "
              f"{c['old'] or '(none)'} -> {c['new'] or '(none)'}" for c in changes["rates"]]
    lines += [f"surcharge {c['surcharge']}: {c['old'] or '(none)'} -> {c['new'] or '(none)'}"
              for c in changes["surcharges"]]
    lines += [f"{key} changed" for key in changes["rules"]]
    if len(lines) == 2:
        lines.append("no differences")
    if args.cdrs:
        start, end = args.cdrs
        calls = _in_transaction(s, lambda cur: store.stored_calls(cur, start, end))
        rr = diff.rerate(calls, old, new)
        changes["rerated"] = rr
        lines += [f"re-rating {rr['calls']} stored call(s) connected from {start.isoformat()} "
                  f"to {end.isoformat()}:",
                  f"  recorded: {rr['recorded']}", f"  {args.old}: {rr['old']} "
                  f"({rr['unrated_old']} unrated)", f"  {args.new}: {rr['new']} "
                  f"({rr['unrated_new']} unrated)",
                  f"  difference: {rr['difference']}; {rr['changed']} call(s) priced "
                  "differently"]
        lines += [f"  cdr {e['cdr']} to {e['destination']}, {e['duration']} s: {e['old']} -> "
                  f"{e['new']}" for e in rr["examples"]]
    emit(args, changes, lines)
    return EXIT_OK


def cmd_tariffs_import_csv(args, s):
    groups, problems = csv_import.read_deck(args.deck, Progress)
    if problems:
        for line in problems[:200]:
            print(line, file=sys.stderr)
        raise Refused(f"{args.deck}: {len(problems)} problem(s); nothing written")
    text = csv_import.to_yaml(groups, args.tariff, args.currency, args.valid_from,
                              plan=args.plan, initial=args.initial, increment=args.increment,
                              source=Path(args.deck).name)
    prefixes = sum(len(p) for p in groups.values())
    if args.out:
        Path(args.out).write_text(text)
        print(f"{args.out}: {len(groups)} destinations, {prefixes} prefixes from {args.deck}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


# --- rate ----------------------------------------------------------------------------

def _rating_for(args, s):
    """(the call's rating context or None, its start): --at without an offset is
    read on the clock of the tariff version that rates the call."""
    call = {"category": args.category, "caller": args.caller, "access": args.access}
    if args.tariff_file:
        doc = _parsed(args.tariff_file)
        return (resolve.context_for(doc, args.to, gateway=args.gateway, **call),
                _call_start(args.at, doc.timezone))

    def work(cur):
        gw = store.gateway_id(cur, args.gateway) if args.gateway else None
        if args.gateway and gw is None:
            raise Refused(f"no gateway named {args.gateway}; see 'kondge gateways list'")
        tariff_id = None
        if args.tariff:
            tariff_id = store.tariff_id(cur, args.tariff)
            if tariff_id is None:
                raise Refused(f"no tariff named {args.tariff}; see 'kondge tariffs list'")

        def lookup(at):
            return store.rating_context(cur, args.to, at, gateway_id=gw, tariff_id=tariff_id,
                                        **call)
        if args.at is None or args.at.tzinfo is not None:
            at = args.at or datetime.now(timezone.utc)
            return lookup(at), at
        # the version in force decides the zone, and the zone the instant: a
        # first look at the time read as UTC, then again at the instant it is
        ctx, at = lookup(args.at.replace(tzinfo=timezone.utc)), None
        for _ in range(2):
            if ctx is None:
                break
            at = _call_start(args.at, ctx.timezone)
            again = lookup(at)
            if again is None or again.timezone == ctx.timezone:
                return again, at
            ctx = again
        return ctx, at
    return _in_transaction(s, work)


def _call_start(at, zone_name: str) -> datetime:
    """--at as an instant: as given with an offset, else on the clock of `zone_name`."""
    if at is None:
        return datetime.now(timezone.utc)
    if at.tzinfo is not None:
        return at
    zone = _zone_of(zone_name)
    candidates = [at.replace(tzinfo=zone, fold=fold) for fold in (0, 1)]
    real = [c for c in candidates
            if c.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) == at]
    if not real:
        raise Refused(f"--at {at.isoformat()}: that time does not exist in {zone_name} (the "
                      "clocks skip it); give the time with its offset")
    if len(real) == 2 and real[0].utcoffset() != real[1].utcoffset():
        raise Refused(f"--at {at.isoformat()}: that time happens twice in {zone_name}; give "
                      f"its offset: {real[0].isoformat()} or {real[1].isoformat()}")
    return real[0]


def _zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError) as exc:       # ZoneInfoNotFoundError is a KeyError
        raise Refused(f"the tariff's time zone {name!r} is unknown here") from exc


def explain(ctx, b, at=None) -> list[str]:
    lines = [f"tariff {ctx.tariff}" + (f" version {ctx.version}" if ctx.version else "")
             + f", plan {ctx.plan}, currency {ctx.currency}",
             f"destination {ctx.destination} (prefix {ctx.prefix})"]
    if at is not None:
        lines.append(f"start {at.astimezone(_zone_of(ctx.timezone)).isoformat()} "
                     f"({ctx.timezone})")
    lines += [f"band at the start: {b.band}; rate: {diff.describe_rate(b.rate)}"]
    lines += [f"surcharge {x.name}: {diff.describe_surcharge(x)}" for x in b.surcharges]
    lines.append(f"{b.seconds} s billed as {b.billed} s")
    for seg in b.segments:
        extra = f" + {seg.surcharge}/min surcharges" if seg.surcharge else ""
        lines.append(f"  {seg.start:>6}-{seg.end:<6} s  band {seg.band:<10} step {seg.step + 1}"
                     f"  {seg.per_minute}/min{extra}  = "
                     f"{(seg.per_minute + seg.surcharge) * (seg.end - seg.start) / 60}")
    if b.billed:
        extra = b.connect - b.rate.connect
        lines.append(f"connect charge {b.connect}"
                     + (f" (rate {b.rate.connect}, surcharges {extra})" if extra else ""))
    if b.minimum_applied:
        lines.append(f"minimum charge {b.rate.minimum} applies")
    if b.discount:
        lines.append(f"discount {b.discount.name}: {b.discount.percent} %")
    raw = str(b.raw) if len(str(b.raw)) <= 20 else f"{b.raw:.12f}..."
    lines.append(f"raw {raw} -> rounded {ctx.rounding} to {ctx.decimals} decimals: "
                 f"{b.cost} {ctx.currency}")
    return lines


def cmd_rate(args, s):
    ctx, at = _rating_for(args, s)
    if ctx is None:
        raise Refused(f"no rate for {args.to}: no plan, destination or rate applies "
                      "(a call would be refused with h323-return-code 9)")
    data = {"tariff": ctx.tariff, "version": ctx.version, "plan": ctx.plan,
            "destination": ctx.destination, "prefix": ctx.prefix, "currency": ctx.currency,
            "at": at.astimezone(_zone_of(ctx.timezone)), "timezone": ctx.timezone}
    if args.balance is not None:
        try:
            balance = to_decimal(args.balance)
        except ValueError as exc:
            raise Refused(f"--balance: {exc}") from None
        seconds = engine.allowed_seconds(ctx, at, balance, args.cap or s.max_credit_time)
        b = engine.rate_call(ctx, at, seconds)
        data.update(balance=balance, allowed_seconds=seconds, cost=b.cost)
        nxt = engine.call_cost(ctx, at, seconds + 1)
        lines = explain(ctx, b, at) + [
            f"a balance of {balance} {ctx.currency} allows {seconds} s "
            f"(costing {b.cost}; {seconds + 1} s would cost {nxt})"]
    else:
        b = engine.rate_call(ctx, at, args.seconds)
        data.update(seconds=args.seconds, billed=b.billed, cost=b.cost, raw=b.raw,
                    band=b.band, segments=[vars(seg) for seg in b.segments],
                    discount=b.discount.name if b.discount else None)
        lines = explain(ctx, b, at)
    data["surcharges"] = [{"name": x.name, "per_minute": x.per_minute, "connect": x.connect}
                          for x in b.surcharges]
    emit(args, data, lines)
    return EXIT_OK


def _phone_number(text):
    """A number given on the command line in the form tariffs hold numbers: the
    international number, digits only ('+', a leading 00, spaces, dashes,
    dots and parentheses dropped)."""
    digits = NUMBER_PUNCTUATION.sub("", text.strip())
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not re.fullmatch(r"[0-9]{1,32}", digits):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a phone number (digits, optionally led by + or 00, with spaces, "
            "dashes or parentheses)")
    return digits


def _call_time(text):
    """--at: a date/time; kept without a zone when it has no offset (cmd_rate reads
    it on the tariff's clock)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date/time like 2026-03-29T01:59 "
                                         "or 2026-03-29T00:59+00:00") from None


# --- parser ------------------------------------------------------------------------

def _amount(text):
    """An amount an operator typed (money.operator_amount); else wrong usage (exit 2)."""
    try:
        return operator_amount(text)
    except MoneyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _currency(text):
    """An active ISO 4217 code in capitals (currencies.py); else wrong usage (exit 2)."""
    problem = currencies.currency_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _datetime(text):
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date/time like 2027-12-31 "
                                         "or 2027-12-31T23:59+00:00") from None
    return value if value.tzinfo else value.astimezone()


def build_parser() -> argparse.ArgumentParser:
    # --json is accepted before or after the command; SUPPRESS keeps the
    # subcommand's default from overriding a --json given before it.
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                           help="print JSON for scripts")

    parser = argparse.ArgumentParser(
        prog="kondge",
        description="Kondge billing: prepaid calling cards behind FreeRADIUS.",
        epilog="Exit status: 0 done, 1 refused, 2 wrong usage, 3 database or service "
               "unavailable. Settings come from KONDGE_* environment variables (README).")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--version", action="version", version=f"kondge {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def group(name, help_text):
        p = groups.add_parser(name, help=help_text, description=help_text)
        return p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def command(sub, name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[json_flag])
        p.set_defaults(func=func)
        return p

    server = group("server", "run, start, stop the service (PostgreSQL + FreeRADIUS)")
    p = command(server, "run", cmd_server_run, "run in the foreground; Ctrl-C stops everything")
    p.add_argument("--ready-file", help=argparse.SUPPRESS)
    command(server, "start", cmd_server_start, "start in the background (idempotent)")
    command(server, "stop", cmd_server_stop, "stop the background service")
    command(server, "db-stop", cmd_server_db_stop,
            "stop PostgreSQL for maintenance and keep it stopped (FreeRADIUS spools accounting)")
    command(server, "db-start", cmd_server_db_start, "start PostgreSQL again after db-stop")
    command(server, "status", cmd_server_status,
            "report what runs; exit 0 if everything runs, 3 if not")

    gws = group("gateways", "the voice gateways (RADIUS clients)")
    p = command(gws, "add", cmd_gateways_add, "add a gateway")
    p.add_argument("--name", required=True, help="a short unique name, e.g. ny-cisco-1")
    p.add_argument("--address", required=True, help="the gateway's source IP address")
    p.add_argument("--secret", required=True, help="the RADIUS shared secret")
    p.add_argument("--dialect", required=True, choices=DIALECTS,
                   help="which attributes it speaks")
    p.add_argument("--message-authenticator", choices=["required", "optional"],
                   default="optional",
                   help="require Message-Authenticator in its Access-Requests "
                        "(default optional: older voice gateways do not send it)")
    p.add_argument("--billed-leg", choices=["originate", "answer"], default="originate",
                   help="the accounting leg that is charged (default originate)")
    p.add_argument("--prepaid-billing-model", type=int, choices=[0, 1], default=1,
                   help="h323-billing-model value meaning prepaid to this gateway "
                        "(default 1, as Cisco and Quintum)")
    command(gws, "list", cmd_gateways_list, "list the gateways (secrets are not shown)")
    p = command(gws, "remove", cmd_gateways_remove, "remove a gateway (its call records stay)")
    p.add_argument("name")

    p = command(gws, "modify", cmd_gateways_modify,
                "change how a gateway writes numbers, its languages or billing settings")
    p.add_argument("name")
    p.add_argument("--country-code", help="its country's calling code, e.g. 44 ('' if it "
                                          "sends international numbers)")
    p.add_argument("--international-prefix", help="e.g. 00, or 011 in North America")
    p.add_argument("--national-prefix", help="the trunk prefix, e.g. 0 in the UK ('' for none)")
    p.add_argument("--language-map", type=_language_map,
                   help="our language codes as its IVR names them, e.g. zh=ch,es=sp")
    p.add_argument("--billed-leg", choices=["originate", "answer"])
    p.add_argument("--message-authenticator", choices=["required", "optional"])
    p.add_argument("--prepaid-billing-model", type=int, choices=[0, 1])
    p.add_argument("--accounting-start", choices=["setup", "answer"],
                   help="what its accounting Start marks: setup (Cisco, Quintum: before "
                        "the call rings) or answer (the server's time from Start to Stop "
                        "is then talk time, used when a Stop reports none)")

    cal = group("callers", "caller numbers (ANI) bound to cards: they log in without a PIN")
    for name, func, text in (("bind", cmd_callers_bind, "bind caller numbers to a card"),
                             ("unbind", cmd_callers_unbind, "unbind caller numbers")):
        p = command(cal, name, func, text)
        if name == "bind":
            p.add_argument("--card", required=True, help="the card number")
        p.add_argument("numbers", nargs="+", help="phone numbers, in any usual form")
        p.add_argument("--gateway", help="read local numbers as this gateway writes them "
                                         "(its country code and prefixes)")
    p = command(cal, "list", cmd_callers_list, "list bound caller numbers")
    p.add_argument("--card", help="only this card's")

    acc = group("access-numbers", "the numbers callers dial in on, and what each allows")
    for name, func, text in (("add", cmd_access_add, "add an access number"),
                             ("modify", cmd_access_modify, "change an access number's policy")):
        p = command(acc, name, func, text)
        p.add_argument("number", help="as the gateway sends it in Called-Station-Id")
        p.add_argument("--description", default="" if name == "add" else None)
        p.add_argument("--login", choices=["card", "caller", "both"],
                       default="both" if name == "add" else None,
                       help="card: card number and PIN only; caller: bound callers only; "
                            "both (default)")
        p.add_argument("--language", help="prompt language for calls on this number")
        p.add_argument("--prompt-id", type=int, help="h323-prompt-id sent to the IVR")
    command(acc, "list", cmd_access_list, "list access numbers and their policies")

    crd = group("cards", "calling cards")
    p = command(crd, "add", cmd_cards_add, "add one card")
    p.add_argument("--number", required=True,
                   help="4 to 20 digits, the last a Luhn check digit (unless "
                        "KONDGE_CARD_CHECK_DIGIT=none)")
    p.add_argument("--pin", required=True, help="1 to 16 digits; stored only as a keyed hash")
    p.add_argument("--balance", required=True, type=_amount,
                   help="opening balance, a plain decimal such as 10.00 (at most 12 digits "
                        "before the point and the currency's decimals after it)")
    p.add_argument("--currency", required=True, type=_currency,
                   help="ISO 4217 code in capitals, e.g. USD: the category's currency")
    p.add_argument("--category", default="standard",
                   help="card category (default standard), in the card's currency")
    p.add_argument("--language", default="en", help="prompt language (default en)")
    p.add_argument("--expires", type=_datetime, help="expiry date/time (ISO 8601)")
    p.add_argument("--tariff", help="the card's own tariff (its name; every version in the "
                                    "card's currency)")
    _operator_option(p)
    p = command(crd, "show", cmd_cards_show, "show one card")
    p.add_argument("number")

    ses = group("sessions", "live calls and the holds of calls being set up")
    p = command(ses, "list", cmd_sessions_list,
                "the calls up now and the holds that still count: card, caller, destination, "
                "gateway, start, granted seconds, elapsed")
    p.add_argument("--card", help="only this card's")
    p = command(ses, "sweep", cmd_sessions_sweep,
                "drop expired holds and close calls whose Stop never came (the supervisor "
                "does this every KONDGE_SWEEP_SECONDS)")
    p.add_argument("--grace", type=int,
                   help="close calls this many seconds past their granted time "
                        "(default KONDGE_SESSION_GRACE)")

    p = command(crd, "issue", cmd_cards_issue,
                "issue a batch of cards (or vouchers) of one category into an XLSX file")
    p.add_argument("--category", required=True, help="the category (see 'kondge categories list')")
    p.add_argument("--count", required=True, type=int, help="how many, e.g. 1000")
    p.add_argument("--batch", help="the batch's name (default CATEGORY-YYYYMMDD-HHMMSS)")
    p.add_argument("--out", required=True,
                   help="the new .xlsx file for the card printer: serial, number, PIN, face "
                        "value, currency, expiry, batch (mode 0600; the only copy of the PINs)")
    p.add_argument("--number-length", type=int, default=issuance.DEFAULT_NUMBER_LENGTH,
                   help="digits of a card number, check digit included (8-20, default 12)")
    p.add_argument("--inactive", action="store_true",
                   help="issue them inactive: refused (code 7) until 'kondge cards activate'")
    p.add_argument("--tariff", help="the cards' own tariff (its name; every version in the "
                                    "category's currency)")
    _operator_option(p)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)")

    for action, help_text in (("activate", "activate inactive or suspended cards"),
                              ("suspend", "suspend cards (refused with code 7)"),
                              ("cancel", "cancel cards for good")):
        p = command(crd, action, cmd_cards_status, help_text)
        _selection_options(p)
    p = command(crd, "extend", cmd_cards_extend,
                "extend validity: --days N later (cards that expire), or --until DATE")
    _selection_options(p)
    p.add_argument("--days", type=int, help="push the expiry back by this many days")
    p.add_argument("--until", type=_datetime, help="set the expiry to this date/time")
    p = command(crd, "move", cmd_cards_move, "move cards to another category")
    _selection_options(p)
    p.add_argument("--to", required=True, help="the new category")
    p = command(crd, "topup", cmd_cards_topup,
                "credit each selected card once (a ledger entry keyed by the operation id)")
    _selection_options(p, vouchers=False)
    p.add_argument("--amount", required=True, type=_amount,
                   help="credit per card, a plain decimal such as 5.00")
    p.add_argument("--currency", required=True, type=_currency,
                   help="the cards' currency, ISO 4217 in capitals, e.g. USD")
    p.add_argument("--operation-id",
                   help="what makes this top-up unique: the same id again credits nobody "
                        "twice (default: a new id, printed)")
    p = command(crd, "refill", cmd_cards_refill,
                "move a recharge voucher's value to a card (each voucher once)")
    p.add_argument("--card", required=True, help="the calling card's number")
    p.add_argument("--voucher", required=True, help="the voucher's number")
    p.add_argument("--pin", required=True, help="the voucher's PIN")
    _operator_option(p)
    p = command(crd, "expire", cmd_cards_expire,
                "empty expired cards: their remaining value becomes an 'expiry' ledger entry "
                "(safe to repeat; run it daily)")
    _operator_option(p)
    p = command(crd, "stats", cmd_cards_stats,
                "issued, activated, used, remaining and expired value")
    p.add_argument("--by", choices=sorted(reports.GROUPS), default="batch",
                   help="group by batch (default), category or status")
    p.add_argument("--batch", help="only this batch")
    p.add_argument("--xlsx", help="also write the table to this .xlsx file")
    p = command(crd, "statement", cmd_cards_statement,
                "a card's statement (bill) for a period as PDF: calls, charges, refills, totals")
    p.add_argument("number")
    p.add_argument("--from", dest="start", required=True, type=_datetime,
                   help="start of the period (ISO 8601, included)")
    p.add_argument("--to", dest="end", required=True, type=_datetime,
                   help="end of the period (ISO 8601, excluded)")
    p.add_argument("--out", required=True, help="the .pdf file to write")

    cat = group("categories", "card categories (products)")
    p = command(cat, "add", cmd_categories_add, "add a category")
    p.add_argument("name", help="e.g. usd-10")
    _category_options(p)
    p = command(cat, "modify", cmd_categories_modify,
                "change a category (only the options given; issued cards keep their expiry; "
                "a category with cards keeps its currency and billing)")
    p.add_argument("name")
    _category_options(p, modify=True)
    command(cat, "list", cmd_categories_list, "list the categories")
    p = command(cat, "show", cmd_categories_show, "show one category")
    p.add_argument("name")

    vch = group("vouchers", "recharge vouchers (issue them with 'kondge cards issue' and a "
                            "category of kind voucher)")
    p = command(vch, "show", cmd_vouchers_show, "show one voucher (used or not, by which card)")
    p.add_argument("number")

    aud = group("audit", "the audit log of operator changes")
    p = command(aud, "list", cmd_audit_list, "the latest audit records")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--action", help="only this action, e.g. top-up")

    cdr = group("cdrs", "call detail records")
    p = command(cdr, "list", cmd_cdrs_list, "list the latest call records")
    _cdr_filters(p)
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p = command(cdr, "export", cmd_cdrs_export, "write call records to an XLSX file")
    _cdr_filters(p)
    p.add_argument("--limit", type=int, help="at most this many, the latest (default all)")
    p.add_argument("--out", required=True, help="the .xlsx file to write")

    trf = group("tariffs", "tariff files: validate, load as a new version, compare, import")
    p = command(trf, "validate", cmd_tariffs_validate,
                "check a tariff file; print every problem with its line (exit 1 if any)")
    p.add_argument("file")
    p = command(trf, "load", cmd_tariffs_load,
                "validate, then load atomically as the tariff's next version")
    p.add_argument("file")
    p = command(trf, "list", cmd_tariffs_list, "list the loaded tariff versions")
    p.add_argument("name", nargs="?", help="only this tariff")
    p = command(trf, "diff", cmd_tariffs_diff,
                "what changed between two versions (files or NAME@VERSION), and with --cdrs "
                "what each would have earned on the stored calls of a period")
    p.add_argument("old", help="a tariff file or a loaded version NAME@VERSION")
    p.add_argument("new", help="a tariff file or a loaded version NAME@VERSION")
    p.add_argument("--cdrs", type=_period, metavar="FROM..TO",
                   help="re-rate the calls connected in this period, e.g. 2026-01-01..2026-02-01")
    p = command(trf, "import-csv", cmd_tariffs_import_csv,
                "turn a carrier's CSV rate deck into a tariff file")
    p.add_argument("deck", help="CSV with a header: prefix, destination, rate (per minute); "
                                "optional connect, minimum, initial, increment")
    p.add_argument("--tariff", required=True, help="the tariff's name")
    p.add_argument("--currency", required=True, help="ISO 4217 code of the deck's prices")
    p.add_argument("--valid-from", required=True, help="when it applies, e.g. 2026-02-01")
    p.add_argument("--plan", default="standard", help="the plan's name (default standard)")
    p.add_argument("--initial", type=int, default=60, help="initial block, s (default 60)")
    p.add_argument("--increment", type=int, default=6, help="increment, s (default 6)")
    p.add_argument("--out", help="write the tariff file here (default: standard output)")

    p = groups.add_parser("rate", parents=[json_flag],
                          help="the price of a call with its breakdown, or the time a "
                               "balance allows",
                          description="The price of a call with its breakdown (plan, band, "
                                      "rate, surcharges, steps, rounding), or with --balance "
                                      "the longest call it allows. Uses the loaded tariff in "
                                      "force at --at (or --tariff-file). Numbers may be given "
                                      "as dialled internationally: +44 7911 123456, "
                                      "0044-7911-123456 and 447911123456 are the same.")
    p.set_defaults(func=cmd_rate)
    p.add_argument("--to", required=True, type=_phone_number, help="the destination number")
    p.add_argument("--from", dest="caller", type=_phone_number,
                   help="the caller's number (ANI)")
    p.add_argument("--access", type=_phone_number, help="the access number dialled (DNIS)")
    p.add_argument("--gateway", help="the gateway's name")
    p.add_argument("--category", default="standard", help="card category (default standard)")
    p.add_argument("--at", type=_call_time, metavar="TIME",
                   help="the call's start (default now): with an offset as given "
                        "(2026-03-29T00:59+00:00, ...Z); without one on the clock of the "
                        "tariff's time zone (its `timezone`), e.g. 2026-03-29T01:59 in a "
                        "Europe/Berlin tariff is 00:59 UTC; a time the clocks skip or show "
                        "twice is refused")
    p.add_argument("--tariff", help="a card's own tariff (default: the default tariff)")
    p.add_argument("--tariff-file", help="rate with this file instead of the loaded tariff")
    p.add_argument("--cap", type=int, help="longest call granted, s (default "
                                           "KONDGE_MAX_CREDIT_TIME)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--seconds", type=int, help="the call's duration")
    what.add_argument("--balance", help="the available balance: how long may the call last?")
    return parser


def _operator_option(p):
    p.add_argument("--operator", help="who does it, for the audit log "
                                      "(default $KONDGE_OPERATOR, else the login user)")


def _selection_options(p, vouchers=True):
    g = p.add_argument_group("which cards (every option given must hold)")
    g.add_argument("--batch", help="the cards of this batch")
    g.add_argument("--serials", help="a serial range FIRST-LAST, e.g. 100001-100500")
    g.add_argument("--number-range", help="a card number range FIRST-LAST")
    g.add_argument("--numbers", help="card numbers separated by commas, or @FILE with one a line")
    g.add_argument("--category", help="the cards of this category")
    g.add_argument("--status", choices=["inactive", "active", "suspended", "cancelled"],
                   help="the cards in this status")
    if vouchers:
        g.add_argument("--vouchers", action="store_true",
                       help="select recharge vouchers instead of calling cards")
    else:
        p.set_defaults(vouchers=False)
    _operator_option(p)


def _category_options(p, modify=False):
    p.add_argument("--description", help="free text")
    p.add_argument("--kind", choices=categories.KINDS,
                   help="card (calling cards, the default) or voucher (recharge vouchers)")
    p.add_argument("--face-value", type=_amount,
                   help="value of a new card, a plain decimal such as 10.00 (default 0)")
    p.add_argument("--currency", type=_currency,
                   help="ISO 4217 code in capitals (default USD); fixed once it has cards")
    p.add_argument("--validity", choices=categories.VALIDITIES,
                   help="none (default); fixed (--valid-until); after-first-use or "
                        "after-issue (--valid-days)")
    p.add_argument("--valid-until", type=_datetime, help="the fixed expiry date")
    p.add_argument("--valid-days", type=int, help="days of validity")
    p.add_argument("--language", help="prompt language, e.g. en (default en)")
    p.add_argument("--max-calls", type=int, help="simultaneous calls allowed (default 1)")
    p.add_argument("--billing", choices=categories.BILLINGS,
                   help="prepaid (default) or postpaid; fixed once it has cards")
    p.add_argument("--credit-limit", type=_amount,
                   help="a postpaid card's credit limit, a plain decimal such as 50.00")
    p.add_argument("--pin-length", type=int, help="digits of a PIN, 4-12 (default 4)")
    tariff = p.add_mutually_exclusive_group() if modify else p
    tariff.add_argument("--tariff", help="the tariff of its cards that have none of their own "
                                         "(its name; every version in the category's currency)")
    if modify:
        tariff.add_argument("--no-tariff", action="store_true",
                            help="take the category's tariff away (its cards without one of "
                                 "their own use the default tariff)")
    _operator_option(p)


def _cdr_filters(p):
    p.add_argument("--card", help="only this card's calls")
    p.add_argument("--batch", help="only calls of this batch's cards")
    p.add_argument("--gateway", help="only calls through this gateway (its name)")
    p.add_argument("--destination", type=_digits, help="only destinations starting with these digits")
    p.add_argument("--from", dest="start", type=_datetime, help="connected at or after (ISO 8601)")
    p.add_argument("--to", dest="end", type=_datetime, help="connected before (ISO 8601)")
    p.add_argument("--flag", help="only CDRs carrying this flag, e.g. no-authorisation, "
                                  "overrun, duration-from-h323-times (see the README's "
                                  "billing rules)")


def _digits(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not digits (a destination prefix)")
    return text


#: The errors of the domain that refuse what an operator asked: exit 1, their text.
REFUSALS = (Refused, PinKeyError, cards.CardError, categories.CategoryError,
            gateways.GatewayError, batches.BatchError, issuance.IssueError,
            vouchers.RefillError, callers.CallerError, statements.StatementError)

#: How a command that raises ends: the first row whose errors match gives the
#: exit status and the message (after "kondge: " on stderr). Anything else is
#: a fault, and Python prints its traceback.
OUTCOMES = (
    (REFUSALS, EXIT_REFUSED, str),
    ((engine.RatingError,), EXIT_REFUSED, lambda exc: f"cannot rate this call: {exc}"),
    ((Unavailable,), EXIT_UNAVAILABLE,
     lambda exc: f"{exc}\nkondge: is the service running? 'make start' starts it"),
    ((stack.StackError,), EXIT_UNAVAILABLE, str),
    ((psycopg2.OperationalError,), EXIT_UNAVAILABLE,
     lambda exc: f"database unavailable: {str(exc).strip()}"),
    ((psycopg2.Error,), EXIT_REFUSED, lambda exc: f"the database refused: {str(exc).strip()}"),
)


def outcome(exc: BaseException) -> tuple[int, str] | None:
    """(exit status, message) for an exception a command raised; None for a fault."""
    for errors, status, message in OUTCOMES:
        if isinstance(exc, errors):
            return status, message(exc)
    return None


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = config.load()
    try:
        return args.func(args, settings)
    except Exception as exc:
        ended = outcome(exc)
        if ended is None:
            raise
        status, message = ended
        print(f"kondge: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())

"""kondge: the operator's command-line tool.

Exit status: 0 done; 1 refused (bad value, not found, already exists);
2 wrong usage; 3 the database or the service is not available.
"""

import argparse
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg2.extras

from . import calls, cards, config, gateways, stack
from .money import to_decimal
from .tariffs import csv_import, diff, engine, resolve, schema, store
from .tariffs.progress import Progress
from .db import Database
from .errors import Unavailable
from .pins import PinKeyError, load_key

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
        conn = db.connection()
        conn.autocommit = False
        with conn:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                return work(cur)
    finally:
        db.close()


# --- server ------------------------------------------------------------------

def cmd_server_run(args, s):
    return stack.run_foreground(s, Path(args.ready_file) if args.ready_file else None)


def cmd_server_start(args, s):
    return stack.start_background(s)


def cmd_server_stop(args, s):
    return stack.stop_background(s)


def cmd_server_status(args, s):
    st = stack.status(s)
    up = bool(st["supervisor_pid"] and st["postgresql"] and st["freeradius_pid"])
    emit(args, st, [
        f"supervisor: {'pid ' + str(st['supervisor_pid']) if st['supervisor_pid'] else 'not running'}",
        f"PostgreSQL: {'running' if st['postgresql'] else 'not running'}",
        f"FreeRADIUS: {'pid ' + str(st['freeradius_pid']) if st['freeradius_pid'] else 'not running'}"
        f" ({st['listen']} auth {st['auth_port']}, acct {st['acct_port']})"])
    return EXIT_OK if up else EXIT_UNAVAILABLE


# --- gateways ------------------------------------------------------------------

def cmd_gateways_add(args, s):
    def work(cur):
        try:
            return gateways.add(cur, args.name, args.address, args.secret, args.dialect,
                                args.message_authenticator, args.billed_leg,
                                args.prepaid_billing_model)
        except gateways.GatewayError as exc:
            raise Refused(str(exc)) from None
    gw = _in_transaction(s, work)
    emit(args, gw.public(), [
        f"gateway {gw.name} added: {gw.address}, dialect {gw.dialect}, "
        f"message authenticator {gw.message_authenticator}, billed leg {gw.billed_leg}",
        f"a running server serves it within {s.gateway_sync_seconds:g} s"])
    return EXIT_OK


def cmd_gateways_list(args, s):
    rows = [gw.public() for gw in _in_transaction(s, gateways.all_gateways)]
    emit(args, rows, table(rows, ["name", "address", "dialect", "message_authenticator",
                                  "billed_leg", "prepaid_billing_model"]))
    return EXIT_OK


def cmd_gateways_remove(args, s):
    if not _in_transaction(s, lambda cur: gateways.remove(cur, args.name)):
        raise Refused(f"no gateway named {args.name}; see 'kondge gateways list'")
    emit(args, {"removed": args.name}, [
        f"gateway {args.name} removed; a running server stops answering it within "
        f"{s.gateway_sync_seconds:g} s (plus a FreeRADIUS restart of about a second)"])
    return EXIT_OK


# --- cards -----------------------------------------------------------------------

def cmd_cards_add(args, s):
    try:
        key = load_key(s.pin_key_file)
    except PinKeyError as exc:
        raise Refused(str(exc)) from None

    def work(cur):
        try:
            return cards.add(cur, key, args.number, args.pin, args.balance, args.currency,
                             category=args.category, language=args.language,
                             expires_at=args.expires, check_digit=s.card_check_digit)
        except cards.CardError as exc:
            raise Refused(str(exc)) from None
    card = _in_transaction(s, work)
    emit(args, card, [f"card {card['number']} added: {card['balance']} {card['currency']}, "
                      f"category {card['category']}, language {card['language']}"])
    return EXIT_OK


def cmd_cards_show(args, s):
    card = _in_transaction(s, lambda cur: cards.show(cur, args.number))
    if card is None:
        raise Refused(f"no card {args.number}")
    emit(args, card, [f"{k}: {_plain(v) if v is not None else ''}" for k, v in card.items()])
    return EXIT_OK


# --- CDRs ------------------------------------------------------------------------

def cmd_cdrs_list(args, s):
    rows = _in_transaction(s, lambda cur: calls.list_cdrs(cur, args.card, args.limit))
    emit(args, rows, table(rows, ["id", "connect_time", "gateway", "card_number", "caller",
                                  "destination", "duration", "charge", "currency", "flags"]))
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

def _rating_for(args, s, at):
    call = {"category": args.category, "caller": args.caller, "access": args.access}
    if args.tariff_file:
        return resolve.context_for(_parsed(args.tariff_file), args.to,
                                   gateway=args.gateway, **call)

    def work(cur):
        gw = store.gateway_id(cur, args.gateway) if args.gateway else None
        if args.gateway and gw is None:
            raise Refused(f"no gateway named {args.gateway}; see 'kondge gateways list'")
        tariff_id = None
        if args.tariff:
            cur.execute("SELECT id FROM kondge.tariff WHERE name = %s", (args.tariff,))
            row = cur.fetchone()
            if row is None:
                raise Refused(f"no tariff named {args.tariff}; see 'kondge tariffs list'")
            tariff_id = row["id"]
        return store.rating_context(cur, args.to, at, gateway_id=gw, tariff_id=tariff_id,
                                    **call)
    return _in_transaction(s, work)


def explain(ctx, b) -> list[str]:
    lines = [f"tariff {ctx.tariff}" + (f" version {ctx.version}" if ctx.version else "")
             + f", plan {ctx.plan}, currency {ctx.currency}",
             f"destination {ctx.destination} (prefix {ctx.prefix})",
             f"band at the start: {b.band}; rate: {diff.describe_rate(b.rate)}",
             f"{b.seconds} s billed as {b.billed} s"]
    for seg in b.segments:
        lines.append(f"  {seg.start:>6}-{seg.end:<6} s  band {seg.band:<10} step {seg.step + 1}"
                     f"  {seg.per_minute}/min  = {seg.per_minute * (seg.end - seg.start) / 60}")
    if b.billed:
        lines.append(f"connect charge {b.connect}")
    if b.minimum_applied:
        lines.append(f"minimum charge {b.rate.minimum} applies")
    if b.discount:
        lines.append(f"discount {b.discount.name}: {b.discount.percent} %")
    raw = str(b.raw) if len(str(b.raw)) <= 20 else f"{b.raw:.12f}..."
    lines.append(f"raw {raw} -> rounded {ctx.rounding} to {ctx.decimals} decimals: "
                 f"{b.cost} {ctx.currency}")
    return lines


def cmd_rate(args, s):
    at = args.at or datetime.now().astimezone()
    ctx = _rating_for(args, s, at)
    if ctx is None:
        raise Refused(f"no rate for {args.to}: no plan, destination or rate applies "
                      "(a call would be refused with h323-return-code 9)")
    data = {"tariff": ctx.tariff, "version": ctx.version, "plan": ctx.plan,
            "destination": ctx.destination, "prefix": ctx.prefix, "currency": ctx.currency,
            "at": at}
    if args.balance is not None:
        try:
            balance = to_decimal(args.balance)
        except ValueError as exc:
            raise Refused(f"--balance: {exc}") from None
        seconds = engine.allowed_seconds(ctx, at, balance, args.cap or s.max_credit_time)
        b = engine.rate_call(ctx, at, seconds)
        data.update(balance=balance, allowed_seconds=seconds, cost=b.cost)
        nxt = engine.call_cost(ctx, at, seconds + 1)
        lines = explain(ctx, b) + [
            f"a balance of {balance} {ctx.currency} allows {seconds} s "
            f"(costing {b.cost}; {seconds + 1} s would cost {nxt})"]
    else:
        b = engine.rate_call(ctx, at, args.seconds)
        data.update(seconds=args.seconds, billed=b.billed, cost=b.cost, raw=b.raw, band=b.band,
                    segments=[vars(seg) for seg in b.segments],
                    discount=b.discount.name if b.discount else None)
        lines = explain(ctx, b)
    emit(args, data, lines)
    return EXIT_OK


# --- parser ------------------------------------------------------------------------

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
    command(server, "status", cmd_server_status,
            "report what runs; exit 0 if everything runs, 3 if not")

    gws = group("gateways", "the voice gateways (RADIUS clients)")
    p = command(gws, "add", cmd_gateways_add, "add a gateway")
    p.add_argument("--name", required=True, help="a short unique name, e.g. ny-cisco-1")
    p.add_argument("--address", required=True, help="the gateway's source IP address")
    p.add_argument("--secret", required=True, help="the RADIUS shared secret")
    p.add_argument("--dialect", required=True, choices=["cisco", "quintum", "generic"],
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

    crd = group("cards", "calling cards")
    p = command(crd, "add", cmd_cards_add, "add one card")
    p.add_argument("--number", required=True,
                   help="4 to 20 digits, the last a Luhn check digit (unless "
                        "KONDGE_CARD_CHECK_DIGIT=none)")
    p.add_argument("--pin", required=True, help="1 to 16 digits; stored only as a keyed hash")
    p.add_argument("--balance", required=True, help="opening balance, e.g. 10.00")
    p.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")
    p.add_argument("--category", default="standard", help="card category (default standard)")
    p.add_argument("--language", default="en", help="prompt language (default en)")
    p.add_argument("--expires", type=_datetime, help="expiry date/time (ISO 8601)")
    p = command(crd, "show", cmd_cards_show, "show one card")
    p.add_argument("number")

    cdr = group("cdrs", "call detail records")
    p = command(cdr, "list", cmd_cdrs_list, "list the latest call records")
    p.add_argument("--card", help="only this card's calls")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
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
                                      "rate, steps, rounding), or with --balance the longest "
                                      "call it allows. Uses the loaded tariff in force at "
                                      "--at (or --tariff-file).")
    p.set_defaults(func=cmd_rate)
    p.add_argument("--to", required=True, help="the destination number")
    p.add_argument("--from", dest="caller", help="the caller's number (ANI)")
    p.add_argument("--access", help="the access number dialled (DNIS)")
    p.add_argument("--gateway", help="the gateway's name")
    p.add_argument("--category", default="standard", help="card category (default standard)")
    p.add_argument("--at", type=_datetime, help="the call's start (default now)")
    p.add_argument("--tariff", help="a card's own tariff (default: the default tariff)")
    p.add_argument("--tariff-file", help="rate with this file instead of the loaded tariff")
    p.add_argument("--cap", type=int, help="longest call granted, s (default "
                                           "KONDGE_MAX_CREDIT_TIME)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--seconds", type=int, help="the call's duration")
    what.add_argument("--balance", help="the available balance: how long may the call last?")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = config.load()
    try:
        return args.func(args, settings)
    except Refused as exc:
        print(f"kondge: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Unavailable as exc:
        print(f"kondge: {exc}\nkondge: is the service running? 'make start' starts it",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    except stack.StackError as exc:
        print(f"kondge: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except psycopg2.OperationalError as exc:
        print(f"kondge: database unavailable: {str(exc).strip()}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except psycopg2.Error as exc:
        print(f"kondge: the database refused: {str(exc).strip()}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())

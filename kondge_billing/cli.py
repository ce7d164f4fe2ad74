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

from . import callers, calls, cards, config, gateways, sessions, stack
from .db import Database
from .errors import Unavailable
from .numbers import NumberFormat
from .pins import PinKeyError, load_key
from .service import Billing

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


def cmd_gateways_modify(args, s):
    changes = {k: getattr(args, k) for k in (
        "country_code", "international_prefix", "national_prefix", "billed_leg",
        "message_authenticator", "prepaid_billing_model") if getattr(args, k) is not None}
    if args.language_map is not None:
        changes["language_map"] = args.language_map
    if not changes:
        raise Refused("nothing to change; see 'kondge gateways modify --help'")

    def work(cur):
        try:
            return gateways.modify(cur, args.name, **changes)
        except gateways.GatewayError as exc:
            raise Refused(str(exc)) from None
    gw = _in_transaction(s, work)
    emit(args, gw.public(), [f"gateway {gw.name} changed: " + ", ".join(
        f"{k} {getattr(gw, k)}" for k in changes)])
    return EXIT_OK


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

    def work(cur):
        try:
            return callers.bind(cur, args.card, args.numbers, fmt)
        except callers.CallerError as exc:
            raise Refused(str(exc)) from None
    numbers = _in_transaction(s, work)
    emit(args, {"card": args.card, "callers": numbers},
         [f"bound to card {args.card}: {', '.join(numbers)}"])
    return EXIT_OK


def cmd_callers_unbind(args, s):
    fmt = _gateway_format(s, args.gateway)

    def work(cur):
        try:
            return callers.unbind(cur, args.numbers, fmt)
        except callers.CallerError as exc:
            raise Refused(str(exc)) from None
    count = _in_transaction(s, work)
    if count == 0:
        raise Refused("none of these numbers was bound")
    emit(args, {"unbound": count}, [f"{count} caller number(s) unbound"])
    return EXIT_OK


def cmd_callers_list(args, s):
    rows = _in_transaction(s, lambda cur: callers.list_callers(cur, args.card))
    emit(args, rows, table(rows, ["caller", "card", "auto_bound", "created_at"]))
    return EXIT_OK


def _access_change(args, s, action):
    def work(cur):
        try:
            return action(cur)
        except callers.CallerError as exc:
            raise Refused(str(exc)) from None
    row = _in_transaction(s, work)
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
        directory = gateways.GatewayDirectory(lambda: db.run(gateways.all_gateways))
        billing = Billing(db, load_key(s.pin_key_file), directory,
                          max_credit_time=s.max_credit_time, hold_seconds=s.hold_seconds)
        result = billing.sweep(s.session_grace if args.grace is None else args.grace)
    finally:
        db.close()
    emit(args, result, [f"{result['holds_dropped']} expired hold(s) dropped, "
                        f"{result['sessions_closed']} call(s) without Stop closed"])
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
    p.add_argument("--balance", required=True, help="opening balance, e.g. 10.00")
    p.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD")
    p.add_argument("--category", default="standard", help="card category (default standard)")
    p.add_argument("--language", default="en", help="prompt language (default en)")
    p.add_argument("--expires", type=_datetime, help="expiry date/time (ISO 8601)")
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

    cdr = group("cdrs", "call detail records")
    p = command(cdr, "list", cmd_cdrs_list, "list the latest call records")
    p.add_argument("--card", help="only this card's calls")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
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

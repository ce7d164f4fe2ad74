"""kondge cards: calling cards one by one, batches of them, and their reports.

The batch changes (activate, suspend, cancel, extend, move, topup) act on a
selection of cards or vouchers; its options are here, the only group that
takes them.
"""

import argparse
from pathlib import Path

from ..store import audit, batches, cards, issuance, reports, statements, vouchers
from ..calls import pin_guard
from .. import xlsx
from ..store.pins import load_key
from ..progress import factory as progress_factory
from .common import (EXIT_OK, CommandError, amount_arg, command, currency_arg, datetime_arg, emit,
                     fields, group, in_transaction, new_file, operator_option, show_one,
                     table)


def register(commands):
    sub = group(commands, "cards", "calling cards")
    p = command(sub, "add", cmd_add, "add one card")
    p.add_argument("--number", required=True,
                   help="4 to 20 digits, the last a Luhn check digit (unless "
                        "KONDGE_CARD_CHECK_DIGIT=none)")
    p.add_argument("--pin", required=True, help="1 to 16 digits; stored only as a keyed hash")
    p.add_argument("--balance", required=True, type=amount_arg,
                   help="opening balance, a plain decimal such as 10.00 (at most 12 digits "
                        "before the point and the currency's decimals after it)")
    p.add_argument("--currency", required=True, type=currency_arg,
                   help="ISO 4217 code in capitals, e.g. USD: the category's currency")
    p.add_argument("--category", default="standard",
                   help="card category (default standard), in the card's currency")
    p.add_argument("--language", default="en", help="prompt language (default en)")
    p.add_argument("--expires", type=datetime_arg, help="expiry date/time (ISO 8601)")
    p.add_argument("--tariff", help="the card's own tariff (its name; every version in the "
                                    "card's currency)")
    operator_option(p)
    p = command(sub, "show", cmd_show, "show one card (with its PIN lock, if any)")
    p.add_argument("number")
    p = command(sub, "unlock", cmd_unlock,
                "lift a lock after too many wrong PINs (code 10) and forget the wrong PINs: "
                "of a card, or of a caller number or a gateway")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("number", nargs="?", help="the card's number")
    which.add_argument("--caller", help="a caller number instead, in international form "
                                        "(e.g. 15551234567)")
    which.add_argument("--gateway", help="a gateway instead, by name")
    operator_option(p)
    p = command(sub, "modify", cmd_modify,
                "change one card's language, expiry or own tariff (only the options given)")
    p.add_argument("number")
    p.add_argument("--language", help="prompt language, e.g. en")
    expiry = p.add_mutually_exclusive_group()
    expiry.add_argument("--expires", type=datetime_arg, help="expiry date/time (ISO 8601)")
    expiry.add_argument("--no-expiry", action="store_true", help="the card never expires")
    tariff = p.add_mutually_exclusive_group()
    tariff.add_argument("--tariff", help="the card's own tariff (its name; every version in "
                                         "the card's currency)")
    tariff.add_argument("--no-tariff", action="store_true",
                        help="take the card's own tariff away (its category's, else the "
                             "default tariff rates its calls)")
    operator_option(p)
    p = command(sub, "set-pin", cmd_set_pin, "give one card a new PIN")
    p.add_argument("number")
    p.add_argument("--pin", required=True, help="the new PIN, 1 to 16 digits; stored only as "
                                                "a keyed hash")
    operator_option(p)
    p = command(sub, "adjust", cmd_adjust,
                "correct one card's balance: an adjustment (either sign) or a refund, as a "
                "ledger entry keyed by the operation id (the same id again moves nothing)")
    p.add_argument("number")
    p.add_argument("--amount", required=True, type=amount_arg,
                   help="what to add to the balance, a plain decimal such as 2.50 or -2.50; "
                        "a debit never takes more than the card has available")
    p.add_argument("--currency", required=True, type=currency_arg,
                   help="the card's currency, ISO 4217 in capitals, e.g. USD")
    p.add_argument("--reason", required=True, help="why, for the ledger and the audit log")
    p.add_argument("--refund", action="store_true",
                   help="record it as a refund (a credit) rather than an adjustment")
    _operation_id_option(p)
    operator_option(p)
    p = command(sub, "transfer", cmd_transfer,
                "move balance from one card to another in the same currency (e.g. a lost "
                "card's value onto its replacement), once per operation id")
    p.add_argument("--from", dest="source", required=True, help="the card that gives")
    p.add_argument("--to", dest="target", required=True, help="the card that receives")
    p.add_argument("--amount", type=amount_arg,
                   help="how much (default: all the first card has available)")
    p.add_argument("--currency", required=True, type=currency_arg,
                   help="the cards' currency, ISO 4217 in capitals, e.g. USD")
    p.add_argument("--reason", required=True, help="why, for the ledger and the audit log")
    _operation_id_option(p)
    operator_option(p)

    p = command(sub, "issue", cmd_issue,
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
    operator_option(p)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)")

    for action, help_text in (("activate", "activate inactive or suspended cards"),
                              ("suspend", "suspend cards (refused with code 7)"),
                              ("cancel", "cancel cards for good")):
        p = command(sub, action, cmd_status, help_text)
        _selection_options(p)
    p = command(sub, "extend", cmd_extend,
                "extend validity: --days N later (cards that expire), or --until DATE")
    _selection_options(p)
    p.add_argument("--days", type=int, help="push the expiry back by this many days")
    p.add_argument("--until", type=datetime_arg, help="set the expiry to this date/time")
    p = command(sub, "move", cmd_move, "move cards to another category")
    _selection_options(p)
    p.add_argument("--to", required=True, help="the new category")
    p = command(sub, "topup", cmd_topup,
                "credit each selected card once (a ledger entry keyed by the operation id)")
    _selection_options(p, vouchers=False)
    p.add_argument("--amount", required=True, type=amount_arg,
                   help="credit per card, a plain decimal such as 5.00")
    p.add_argument("--currency", required=True, type=currency_arg,
                   help="the cards' currency, ISO 4217 in capitals, e.g. USD")
    _operation_id_option(p)

    p = command(sub, "refill", cmd_refill,
                "move a recharge voucher's value to a card (each voucher once)")
    p.add_argument("--card", required=True, help="the calling card's number")
    p.add_argument("--voucher", required=True, help="the voucher's number")
    p.add_argument("--pin", required=True, help="the voucher's PIN")
    operator_option(p)
    p = command(sub, "expire", cmd_expire,
                "empty expired cards: their remaining value becomes an 'expiry' ledger entry "
                "(safe to repeat; run it daily)")
    operator_option(p)
    p = command(sub, "stats", cmd_stats, "issued, activated, used, remaining and expired value")
    p.add_argument("--by", choices=sorted(reports.GROUPS), default="batch",
                   help="group by batch (default), category or status")
    p.add_argument("--batch", help="only this batch")
    p.add_argument("--xlsx", help="also write the table to this .xlsx file")
    p = command(sub, "statement", cmd_statement,
                "a card's statement (bill) for a period as PDF, in the card's language: "
                "calls, charges, refills, totals")
    p.add_argument("number")
    p.add_argument("--from", dest="start", required=True, type=datetime_arg,
                   help="start of the period (ISO 8601, included)")
    p.add_argument("--to", dest="end", required=True, type=datetime_arg,
                   help="end of the period (ISO 8601, excluded)")
    p.add_argument("--out", required=True, help="the .pdf file to write")


# --- one card ------------------------------------------------------------------------------

def cmd_add(args, s):
    key = load_key(s.pin_key_file)
    operator = audit.operator_name(args.operator)
    card = in_transaction(s, lambda cur: cards.add(
        cur, key, args.number, args.pin, args.balance, args.currency, category=args.category,
        language=args.language, expires_at=args.expires, check_digit=s.card_check_digit,
        tariff=args.tariff, operator=operator))
    tariff = f"tariff {card['tariff']}" if card["tariff"] else "no tariff of its own"
    emit(args, card, [f"card {card['number']} added: {card['balance']} {card['currency']}, "
                      f"category {card['category']}, language {card['language']}, {tariff}"])
    return EXIT_OK


def cmd_show(args, s):
    def lookup(cur):
        card = cards.show(cur, args.number)
        return card and {**card, **pin_guard.card_state(cur, args.number)}
    return show_one(args, s, lookup, f"no card {args.number}")


def cmd_unlock(args, s):
    scope, given = next((scope, value) for scope, value in (
        ("card", args.number), ("caller", args.caller), ("gateway", args.gateway)) if value)
    operator = audit.operator_name(args.operator)
    done = in_transaction(s, lambda cur: pin_guard.unlock(cur, scope, given, operator))
    what = {"card": f"card {given}", "caller": f"caller {given}",
            "gateway": f"gateway {given}"}[scope]
    if done["was_locked"]:
        line = f"{what} unlocked: its PIN logins are checked again"
    elif done["counted"]:
        line = f"{what} was not locked; its wrong PINs are forgotten"
    else:
        line = f"{what} was not locked and had no wrong PINs: nothing to do"
    emit(args, done, [line])
    return EXIT_OK


def cmd_modify(args, s):
    operator = audit.operator_name(args.operator)
    card = in_transaction(s, lambda cur: cards.modify(
        cur, args.number, operator, language=args.language,
        expires_at=cards.NO_EXPIRY if args.no_expiry else args.expires,
        tariff=cards.NO_TARIFF if args.no_tariff else args.tariff))
    emit(args, card, [f"card {args.number} changed (by {operator})"] + fields(card))
    return EXIT_OK


def cmd_set_pin(args, s):
    key = load_key(s.pin_key_file)
    operator = audit.operator_name(args.operator)
    done = in_transaction(s, lambda cur: cards.set_pin(cur, key, args.number, args.pin,
                                                       operator))
    emit(args, done, [f"card {args.number}: new PIN set (by {operator})"])
    return EXIT_OK


def cmd_adjust(args, s):
    operator = audit.operator_name(args.operator)
    op_id = args.operation_id or batches.new_operation_id()
    done = in_transaction(s, lambda cur: cards.adjust(
        cur, args.number, args.amount, args.currency, args.reason, op_id,
        kind="refund" if args.refund else "adjustment", operator=operator))
    what = (f"{done['kind']} of {done['amount']} {done['currency']}" if done["posted"] else
            f"operation {op_id} was done before: nothing moved now")
    emit(args, done, [f"card {args.number}: {what}; balance {done['balance']} (by {operator})",
                      _repeat_line(op_id)])
    return EXIT_OK


def cmd_transfer(args, s):
    operator = audit.operator_name(args.operator)
    op_id = args.operation_id or batches.new_operation_id()
    done = in_transaction(s, lambda cur: cards.transfer(
        cur, args.source, args.target, args.currency, args.reason, op_id, amount=args.amount,
        operator=operator))
    what = (f"{done['moved']} {done['currency']} moved" if done["posted"] else
            f"operation {op_id} was done before: nothing moved now")
    emit(args, done, [f"card {args.source} -> card {args.target}: {what}; balances "
                      f"{done['from_balance']} and {done['to_balance']} (by {operator})",
                      _repeat_line(op_id)])
    return EXIT_OK


def _repeat_line(op_id) -> str:
    return (f"operation id {op_id}: repeating the command with --operation-id {op_id} "
            "moves nothing twice")


def cmd_refill(args, s):
    key = load_key(s.pin_key_file)
    operator = audit.operator_name(args.operator)
    result = in_transaction(s, lambda cur: vouchers.refill(
        cur, key, args.card, args.voucher, args.pin, operator))
    if "refused" in result:         # a wrong PIN: its count is committed, then refused
        raise CommandError(result["refused"])
    emit(args, result, [f"card {result['card']} refilled with {result['amount']} "
                        f"{result['currency']} from voucher {result['voucher']}; "
                        f"balance {result['balance']}"])
    return EXIT_OK


def cmd_statement(args, s):
    out = new_file(args.out, ".pdf")
    st = in_transaction(s, lambda cur: statements.statement(cur, args.number, args.start,
                                                            args.end))
    statements.render_pdf(st, out, st["card"]["language"])
    summary = {k: st[k] for k in ("opening", "charges", "credits", "debits", "closing")}
    summary.update(calls=len(st["calls"]), file=str(out))
    emit(args, summary, [
        f"statement of card {args.number}: {len(st['calls'])} calls, charges {st['charges']}, "
        f"opening {st['opening']}, closing {st['closing']} {st['card']['currency']}",
        f"written to {out}"])
    return EXIT_OK


# --- batches -------------------------------------------------------------------------------

def cmd_issue(args, s):
    out = new_file(args.out, ".xlsx")
    if out.exists():
        raise CommandError(f"{out} exists; the PINs of another batch may be in it: "
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
    batch = in_transaction(s, work)
    summary = {k: v for k, v in batch.items() if k != "pieces"}
    summary["file"] = str(out)
    emit(args, summary, [
        f"batch {batch['batch']}: {batch['count']} {batch['kind']}s of category "
        f"{batch['category']}, {batch['face_value']} {batch['currency']} each, {batch['status']}",
        f"numbers and PINs: {out} (mode 0600; the only copy of the PINs: print it, "
        "then keep it safe or destroy it)"])
    return EXIT_OK


def cmd_status(args, s):
    return _batch_change(args, s, lambda cur, sel, op: batches.change_status(
        cur, sel, args.action, op))


def cmd_extend(args, s):
    return _batch_change(args, s, lambda cur, sel, op: batches.extend(
        cur, sel, op, days=args.days, until=args.until))


def cmd_move(args, s):
    return _batch_change(args, s, lambda cur, sel, op: batches.move(cur, sel, op, args.to))


def cmd_topup(args, s):
    op_id = args.operation_id or batches.new_operation_id()
    code = _batch_change(args, s, lambda cur, sel, op: batches.top_up(
        cur, sel, op, args.amount, args.currency, op_id))
    if not args.json:
        print(f"operation id {op_id}: repeating the command with --operation-id {op_id} "
              "credits nobody twice")
    return code


def cmd_expire(args, s):
    operator = audit.operator_name(args.operator)
    result = in_transaction(s, lambda cur: cards.expire(cur, operator))
    value = ", ".join(f"{v} {c}" for c, v in sorted(result["value"].items())) or "nothing"
    emit(args, result, [f"{result['cards']} expired cards emptied; value expired: {value}"])
    return EXIT_OK


def cmd_stats(args, s):
    rows = in_transaction(s, lambda cur: reports.card_stats(cur, args.by, args.batch))
    if args.xlsx:
        out = new_file(args.xlsx, ".xlsx")
        xlsx.write_table(out, f"card_stats_by_{args.by}", reports.STATS_COLUMNS,
                         ([r[c] for c in reports.STATS_COLUMNS] for r in rows))
    emit(args, rows, table(rows, reports.STATS_COLUMNS)
         + ([f"written to {args.xlsx}"] if args.xlsx else []))
    return EXIT_OK


def _batch_change(args, s, change):
    """change(cur, selection, operator) on the cards (or vouchers) the options select."""
    selection = _selection(args)
    operator = audit.operator_name(args.operator)
    result = in_transaction(s, lambda cur: change(cur, selection, operator))
    what = "vouchers" if args.vouchers else "cards"
    emit(args, result, [f"{result['action']}: {result['changed']} of {result['matched']} "
                        f"selected {what} changed (by {operator}; see 'kondge audit list')"])
    return EXIT_OK


# --- which cards -----------------------------------------------------------------------------

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
    operator_option(p)


def _operation_id_option(p):
    p.add_argument("--operation-id",
                   help="what makes this movement unique: the same id again moves nothing "
                        "twice (default: a new id, printed)")


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


def _range(text, kind):
    first, sep, last = (text or "").partition("-")
    if not sep or not all(x.isascii() and x.isdigit() for x in (first, last)):
        raise CommandError(f"{kind}: FIRST-LAST, e.g. 100001-100500")
    return first, last

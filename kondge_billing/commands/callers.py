"""kondge callers: caller numbers (ANI) bound to cards, which log in without a PIN."""

from ..store import audit, callers, gateways
from ..rating.numbers import NumberFormat
from .common import (EXIT_OK, CommandError, command, emit, group, in_transaction, operator_option,
                     table)


def register(commands):
    sub = group(commands, "callers",
                "caller numbers (ANI) bound to cards: they log in without a PIN")
    p = command(sub, "bind", cmd_bind, "bind caller numbers to a card")
    p.add_argument("--card", required=True, help="the card number")
    _numbers_options(p)
    p = command(sub, "unbind", cmd_unbind, "unbind caller numbers (refused if none is bound)")
    _numbers_options(p)
    p = command(sub, "list", cmd_list, "list bound caller numbers")
    p.add_argument("--card", help="only this card's")


def _numbers_options(p):
    p.add_argument("numbers", nargs="+", help="phone numbers, in any usual form")
    p.add_argument("--gateway", help="read local numbers as this gateway writes them "
                                     "(its country code and prefixes)")
    operator_option(p)


def cmd_bind(args, s):
    fmt = _gateway_format(s, args.gateway)
    operator = audit.operator_name(args.operator)
    numbers = in_transaction(s, lambda cur: callers.bind(cur, args.card, args.numbers, fmt,
                                                         operator))
    emit(args, {"card": args.card, "callers": numbers},
         [f"bound to card {args.card}: {', '.join(numbers)}"])
    return EXIT_OK


def cmd_unbind(args, s):
    fmt = _gateway_format(s, args.gateway)
    operator = audit.operator_name(args.operator)
    count = in_transaction(s, lambda cur: callers.unbind(cur, args.numbers, fmt, operator))
    emit(args, {"unbound": count}, [f"{count} caller number(s) unbound"])
    return EXIT_OK


def cmd_list(args, s):
    rows = in_transaction(s, lambda cur: callers.list_callers(cur, args.card))
    emit(args, rows, table(rows, ["caller", "card", "auto_bound", "created_at"]))
    return EXIT_OK


def _gateway_format(s, name) -> NumberFormat:
    """How the gateway called name writes numbers (international if none is named)."""
    if name is None:
        return NumberFormat()
    found = [gw for gw in in_transaction(s, lambda cur: gateways.all_gateways(cur, False))
             if gw.name == name]
    if not found:
        raise CommandError(f"no gateway named {name}; see 'kondge gateways list'")
    return found[0].number_format

"""kondge categories: card categories (products)."""

import argparse

from ..store import audit, categories
from .common import (EXIT_OK, amount_arg, command, currency_arg, datetime_arg, emit, fields,
                     group, in_transaction, operator_option, show_one, table)


def register(commands):
    sub = group(commands, "categories", "card categories (products)")
    p = command(sub, "add", cmd_add, "add a category")
    p.add_argument("name", help="e.g. usd-10")
    _category_options(p)
    p = command(sub, "modify", cmd_modify,
                "change a category (only the options given; issued cards keep their expiry; "
                "a category with cards keeps its currency and billing)")
    p.add_argument("name")
    _category_options(p, modify=True)
    command(sub, "list", cmd_list, "list the categories")
    p = command(sub, "show", cmd_show, "show one category")
    p.add_argument("name")


def _category_options(p, modify=False):
    p.add_argument("--description", help="free text")
    p.add_argument("--kind", choices=categories.KINDS,
                   help="card (calling cards, the default) or voucher (recharge vouchers)")
    p.add_argument("--face-value", type=amount_arg,
                   help="value of a new card, a plain decimal such as 10.00 (default 0)")
    p.add_argument("--currency", type=currency_arg,
                   help="ISO 4217 code in capitals (default USD); fixed once it has cards")
    p.add_argument("--validity", choices=categories.VALIDITIES,
                   help="none (default); fixed (--valid-until); after-first-use or "
                        "after-issue (--valid-days)")
    p.add_argument("--valid-until", type=datetime_arg, help="the fixed expiry date")
    p.add_argument("--valid-days", type=int, help="days of validity")
    p.add_argument("--language", help="prompt language, e.g. en (default en)")
    p.add_argument("--max-calls", type=int, help="simultaneous calls allowed (default 1)")
    p.add_argument("--billing", choices=categories.BILLINGS,
                   help="prepaid (default) or postpaid; fixed once it has cards")
    p.add_argument("--credit-limit", type=amount_arg,
                   help="a postpaid card's credit limit, a plain decimal such as 50.00")
    p.add_argument("--pin-length", type=int, help="digits of a PIN, 4-12 (default 4)")
    p.add_argument("--max-call-seconds", type=int,
                   help="the longest one call of its cards may last, 1-86400 s (0: no cap of "
                        "its own, the default: KONDGE_MAX_CREDIT_TIME only)")
    p.add_argument("--auto-bind", action=argparse.BooleanOptionalAction, default=None,
                   help="bind the caller's number to the card after a card login (default "
                        "no)")
    p.add_argument("--max-callers", type=int,
                   help="at most this many numbers bound so per card, 0-1000 (default 3)")
    tariff = p.add_mutually_exclusive_group() if modify else p
    tariff.add_argument("--tariff", help="the tariff of its cards that have none of their own "
                                         "(its name; every version in the category's currency)")
    if modify:
        tariff.add_argument("--no-tariff", action="store_true",
                            help="take the category's tariff away (its cards without one of "
                                 "their own use the default tariff)")
    operator_option(p)


def _category_fields(args) -> dict:
    values = {f: getattr(args, f) for f in categories.FIELDS}
    values["tariff"] = categories.NO_TARIFF if getattr(args, "no_tariff", False) else args.tariff
    return dict(values, operator=audit.operator_name(args.operator))


def cmd_add(args, s):
    c = in_transaction(s, lambda cur: categories.add(cur, args.name, **_category_fields(args)))
    emit(args, c, [f"category {c['name']} added"] + fields(c))
    return EXIT_OK


def cmd_modify(args, s):
    c = in_transaction(s, lambda cur: categories.modify(cur, args.name,
                                                         **_category_fields(args)))
    emit(args, c, [f"category {c['name']} changed (cards issued before keep their "
                   "expiry and balance)"] + fields(c))
    return EXIT_OK


def cmd_list(args, s):
    rows = in_transaction(s, categories.all_categories)
    emit(args, rows, table(rows, ["name", "kind", "face_value", "currency", "validity",
                                  "valid_until", "valid_days", "language", "max_calls",
                                  "billing", "credit_limit", "pin_length", "tariff"]))
    return EXIT_OK


def cmd_show(args, s):
    return show_one(args, s, lambda cur: categories.show(cur, args.name),
                    f"no category {args.name}; see 'kondge categories list'")

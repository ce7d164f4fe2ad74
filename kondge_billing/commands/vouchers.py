"""kondge vouchers: recharge vouchers (issued by 'kondge cards issue', spent by
'kondge cards refill')."""

from ..store import vouchers
from .common import command, group, show_one


def register(commands):
    sub = group(commands, "vouchers", "recharge vouchers (issue them with 'kondge cards issue' "
                                      "and a category of kind voucher)")
    p = command(sub, "show", cmd_show, "show one voucher (used or not, by which card)")
    p.add_argument("number")


def cmd_show(args, s):
    return show_one(args, s, lambda cur: vouchers.show(cur, args.number),
                    f"no voucher {args.number}")

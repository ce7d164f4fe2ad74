"""kondge gateways: the voice gateways (RADIUS clients).

A change is stored, then applied to the running server at once
(stack.apply_gateway_change); exit 3 if the server does not apply it in time.
"""

import argparse

from ..store import audit, gateways
from ..operations import stack
from .common import (EXIT_OK, EXIT_UNAVAILABLE, CommandError, command, emit, group,
                     in_transaction, operator_option, table)


def register(commands):
    sub = group(commands, "gateways", "the voice gateways (RADIUS clients)")
    p = command(sub, "add", cmd_add, "add a gateway")
    p.add_argument("--name", required=True, help="a short unique name, e.g. ny-cisco-1")
    p.add_argument("--address", required=True, help="the gateway's source IP address")
    p.add_argument("--secret", required=True, help="the RADIUS shared secret")
    p.add_argument("--dialect", required=True, choices=gateways.DIALECTS,
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
    operator_option(p)
    command(sub, "list", cmd_list, "list the gateways (secrets are not shown)")
    p = command(sub, "remove", cmd_remove, "remove a gateway (its call records stay)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("name", nargs="?", help="the gateway's name")
    which.add_argument("--id", type=int, help="the gateway's id, as 'kondge server status' "
                                              "names a gateway it does not serve")
    operator_option(p)

    p = command(sub, "modify", cmd_modify,
                "change how a gateway writes numbers, its languages or billing settings")
    p.add_argument("name")
    p.add_argument("--country-code", help="its country's calling code, e.g. 44 ('' if it "
                                          "sends international numbers)")
    p.add_argument("--international-prefix", help="e.g. 00, or 011 in North America")
    p.add_argument("--national-prefix", help="the trunk prefix, e.g. 0 in the UK ('' for none)")
    p.add_argument("--language-map", type=language_map,
                   help="our language codes as its IVR names them, e.g. zh=ch,es=sp")
    p.add_argument("--billed-leg", choices=["originate", "answer"])
    p.add_argument("--message-authenticator", choices=["required", "optional"])
    p.add_argument("--prepaid-billing-model", type=int, choices=[0, 1])
    p.add_argument("--accounting-start", choices=["setup", "answer"],
                   help="what its accounting Start marks: setup (Cisco, Quintum: before "
                        "the call rings) or answer (the server's time from Start to Stop "
                        "is then talk time, used when a Stop reports none)")
    operator_option(p)


def language_map(text):
    pairs = {}
    for item in filter(None, text.split(",")):
        ours, sep, theirs = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: write ours=theirs, e.g. zh=ch")
        pairs[ours.strip()] = theirs.strip()
    return pairs


def cmd_add(args, s):
    operator = audit.operator_name(args.operator)
    gw = in_transaction(s, lambda cur: gateways.add(
        cur, args.name, args.address, args.secret, args.dialect, args.message_authenticator,
        args.billed_leg, args.prepaid_billing_model, operator))
    served = stack.apply_gateway_change(s, gw.revision)
    emit(args, dict(gw.public(), served=served), [
        f"gateway {gw.name} added: {gw.address}, dialect {gw.dialect}, "
        f"message authenticator {gw.message_authenticator}, billed leg {gw.billed_leg}",
        _served_line(s, served)])
    return _served_status(served)


def cmd_list(args, s):
    rows = [gw.public() for gw in in_transaction(s, lambda cur: gateways.all_gateways(cur,
                                                                                      False))]
    emit(args, rows, table(rows, ["name", "address", "dialect", "message_authenticator",
                                  "billed_leg", "prepaid_billing_model"]))
    return EXIT_OK


def cmd_remove(args, s):
    operator = audit.operator_name(args.operator)
    revision = in_transaction(s, lambda cur: gateways.remove(cur, args.name, args.id, operator))
    which = f"named {args.name}" if args.id is None else f"with id {args.id}"
    if revision is None:
        raise CommandError(f"no gateway {which}; see 'kondge gateways list'")
    served = stack.apply_gateway_change(s, revision)
    emit(args, {"removed": args.name or args.id, "served": served}, [
        f"gateway {which} removed (its call records stay)", _served_line(s, served)])
    return _served_status(served)


def cmd_modify(args, s):
    changes = {k: getattr(args, k) for k in (
        "country_code", "international_prefix", "national_prefix", "billed_leg",
        "message_authenticator", "prepaid_billing_model", "accounting_start")
        if getattr(args, k) is not None}
    if args.language_map is not None:
        changes["language_map"] = args.language_map
    if not changes:
        raise CommandError("nothing to change; see 'kondge gateways modify --help'")
    operator = audit.operator_name(args.operator)
    gw = in_transaction(s, lambda cur: gateways.modify(cur, args.name, operator, **changes))
    served = stack.apply_gateway_change(s, gw.revision)
    emit(args, dict(gw.public(), served=served), [f"gateway {gw.name} changed: " + ", ".join(
        f"{k} {getattr(gw, k)}" for k in changes), _served_line(s, served)])
    return _served_status(served)


def _served_line(s, served) -> str:
    """What stack.apply_gateway_change's answer means for the operator."""
    if served is None:
        return "no server is running here: it serves the change when it starts"
    if served:
        return "the running server serves the change now"
    return (f"the change is stored, but the running server did not apply it in time; "
            f"see {s.log_dir / 'supervisor.log'}")


def _served_status(served) -> int:
    return EXIT_OK if served is not False else EXIT_UNAVAILABLE

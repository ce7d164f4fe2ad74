"""kondge rate: the price of a call with its breakdown, or the time a balance allows.

Rates with the loaded tariff in force at the call's start, as the server
would, or with a tariff file. An engine.RatingError ends the command through
cli.OUTCOMES ("cannot rate this call: ...").
"""

import argparse
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from ..rating.money import to_decimal
from ..rating.numbers import CLEAN as NUMBER_PUNCTUATION
from ..rating import diff, engine, resolve
from ..store import tariffs
from .common import EXIT_OK, CommandError, command, emit, in_transaction, parsed_tariff

DESCRIPTION = (
    "The price of a call with its breakdown (plan, band, rate, surcharges, steps, rounding), "
    "or with --balance the longest call it allows. Uses the loaded tariff in force at --at "
    "(or --tariff-file). Numbers may be given as dialled internationally: +44 7911 123456, "
    "0044-7911-123456 and 447911123456 are the same.")


def register(commands):
    p = command(commands, "rate", cmd_rate,
                "the price of a call with its breakdown, or the time a balance allows",
                description=DESCRIPTION)
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


def cmd_rate(args, s):
    ctx, at = _rating_for(args, s)
    if ctx is None:
        raise CommandError(f"no rate for {args.to}: no plan, destination or rate applies "
                      "(a call would be refused with h323-return-code 9)")
    data = {"tariff": ctx.tariff, "version": ctx.version, "plan": ctx.plan,
            "destination": ctx.destination, "prefix": ctx.prefix, "currency": ctx.currency,
            "at": at.astimezone(_zone_of(ctx.timezone)), "timezone": ctx.timezone}
    if args.balance is not None:
        try:
            balance = to_decimal(args.balance)
        except ValueError as exc:
            raise CommandError(f"--balance: {exc}") from None
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


def _rating_for(args, s):
    """(the call's rating context or None, its start): --at without an offset is
    read on the clock of the tariff version that rates the call."""
    call = {"category": args.category, "caller": args.caller, "access": args.access}
    if args.tariff_file:
        doc = parsed_tariff(args.tariff_file)
        return (resolve.context_for(doc, args.to, gateway=args.gateway, **call),
                _call_start(args.at, doc.timezone))

    def work(cur):
        gw = tariffs.gateway_id(cur, args.gateway) if args.gateway else None
        if args.gateway and gw is None:
            raise CommandError(f"no gateway named {args.gateway}; see 'kondge gateways list'")
        tariff_id = None
        if args.tariff:
            tariff_id = tariffs.tariff_id(cur, args.tariff)
            if tariff_id is None:
                raise CommandError(f"no tariff named {args.tariff}; see 'kondge tariffs list'")

        def lookup(at):
            return tariffs.rating_context(cur, args.to, at, gateway_id=gw, tariff_id=tariff_id,
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
    return in_transaction(s, work)


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
        raise CommandError(f"--at {at.isoformat()}: that time does not exist in {zone_name} (the "
                      "clocks skip it); give the time with its offset")
    if len(real) == 2 and real[0].utcoffset() != real[1].utcoffset():
        raise CommandError(f"--at {at.isoformat()}: that time happens twice in {zone_name}; give "
                      f"its offset: {real[0].isoformat()} or {real[1].isoformat()}")
    return real[0]


def _zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError) as exc:       # ZoneInfoNotFoundError is a KeyError
        raise CommandError(f"the tariff's time zone {name!r} is unknown here") from exc


def explain(ctx, b, at=None) -> list[str]:
    """The breakdown of the call b as rated with ctx, a line each."""
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

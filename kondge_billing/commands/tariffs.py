"""kondge tariffs: tariff files validated, loaded as new versions, compared, imported."""

import argparse
import json
import sys
from pathlib import Path

from ..store import audit
from ..progress import factory as progress_factory
from ..rating import rate_deck, diff, tariff_file
from ..store import tariffs
from .common import (EXIT_OK, EXIT_REFUSED, CommandError, command, datetime_arg, emit, group,
                     in_transaction, operator_option, parsed_tariff, plain, table)

#: the bar of loading a tariff or reading a deck: on a terminal, from 10,000
#: prefixes or rows (a smaller one is over at once)
BAR = progress_factory(None, at_least=10_000)


def register(commands):
    sub = group(commands, "tariffs",
                "tariff files: validate, load as a new version, compare, import")
    p = command(sub, "validate", cmd_validate,
                "check a tariff file; print every problem with its line (exit 1 if any)")
    p.add_argument("file")
    p = command(sub, "load", cmd_load,
                "validate, then load atomically as the tariff's next version")
    p.add_argument("file")
    operator_option(p)
    p = command(sub, "list", cmd_list, "list the loaded tariff versions")
    p.add_argument("name", nargs="?", help="only this tariff")
    p = command(sub, "diff", cmd_diff,
                "what changed between two versions (files or NAME@VERSION), and with --cdrs "
                "what each would have earned on the stored calls of a period")
    p.add_argument("old", help="a tariff file or a loaded version NAME@VERSION")
    p.add_argument("new", help="a tariff file or a loaded version NAME@VERSION")
    p.add_argument("--cdrs", type=_period, metavar="FROM..TO",
                   help="re-rate the calls connected in this period, e.g. 2026-01-01..2026-02-01")
    p = command(sub, "import-csv", cmd_import_csv,
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


def _period(text):
    start, sep, end = text.partition("..")
    if not sep:
        raise argparse.ArgumentTypeError("a period is FROM..TO, e.g. 2026-01-01..2026-02-01")
    return datetime_arg(start), datetime_arg(end)


def cmd_validate(args, s):
    doc, problems = tariff_file.parse_file(args.file)
    summary = {"file": args.file, "valid": not problems, "problems": problems}
    if doc is not None and not problems:
        summary.update(tariff=doc.name, destinations=len(doc.destinations),
                       prefixes=len(doc.prefixes), plans=len(doc.plans))
    if args.json:
        print(json.dumps(plain(summary), indent=2))
    elif problems:
        for line in problems:
            print(line, file=sys.stderr)
    else:
        print(f"{args.file}: ok: tariff {doc.name}, {len(doc.destinations)} destinations, "
              f"{len(doc.prefixes)} prefixes, {len(doc.plans)} plans")
    return EXIT_REFUSED if problems else EXIT_OK


def cmd_load(args, s):
    doc = parsed_tariff(args.file)
    operator = audit.operator_name(args.operator)
    loaded = in_transaction(s, lambda cur: tariffs.load(cur, doc, str(args.file), BAR,
                                                      operator))
    emit(args, loaded, [
        f"tariff {loaded['tariff']} version {loaded['version']} loaded: "
        f"{loaded['destinations']} destinations, {loaded['prefixes']} prefixes, "
        f"{loaded['plans']} plans, {loaded['rates']} rates",
        f"it applies to calls from {loaded['valid_from'].isoformat()} on; the running server "
        "uses it for new calls without a restart"])
    return EXIT_OK


def cmd_list(args, s):
    rows = in_transaction(s, lambda cur: tariffs.versions(cur, args.name))
    emit(args, rows, table(rows, ["tariff", "version", "valid_from", "currency", "destinations",
                                  "is_default", "loaded_at", "source_name"]))
    return EXIT_OK


def cmd_diff(args, s):
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
        stored = in_transaction(s, lambda cur: tariffs.stored_calls(cur, start, end))
        rr = diff.rerate(stored, old, new)
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


def _doc_for(s, ref) -> tariff_file.TariffDoc:
    """The tariff a file or a loaded version NAME@VERSION holds."""
    if tariffs.is_version_ref(ref) and not Path(ref).exists():
        found = in_transaction(s, lambda cur: tariffs.version_source(cur, ref))
        if found is None:
            raise CommandError(f"no loaded version {ref}; see 'kondge tariffs list'")
        doc, problems = tariff_file.parse(found["source"], ref)
        if problems:
            raise CommandError(f"{ref}: its stored file no longer validates: {problems[0]}")
        return doc
    return parsed_tariff(ref)


def cmd_import_csv(args, s):
    groups, problems = rate_deck.read_deck(args.deck, BAR)
    if problems:
        for line in problems[:200]:
            print(line, file=sys.stderr)
        raise CommandError(f"{args.deck}: {len(problems)} problem(s); nothing written")
    text = rate_deck.to_yaml(groups, args.tariff, args.currency, args.valid_from,
                              plan=args.plan, initial=args.initial, increment=args.increment,
                              source=Path(args.deck).name)
    # What is written is what `tariffs validate` will read: check it as that would.
    _doc, problems = tariff_file.parse(text, args.out or "<standard output>")
    if problems:
        for line in problems[:200]:
            print(line, file=sys.stderr)
        raise CommandError(f"{args.deck}: the tariff file would not validate "
                      f"({len(problems)} problem(s)); nothing written")
    prefixes = sum(len(p) for p in groups.values())
    if args.out:
        Path(args.out).write_text(text)
        print(f"{args.out}: {len(groups)} destinations, {prefixes} prefixes from {args.deck}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK

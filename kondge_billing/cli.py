"""kondge: the operator's command-line tool.

Exit status: 0 done; 1 refused (bad value, not found, already exists);
2 wrong usage; 3 the database or the service is not available; 141 the
reader of the output went away (as a program killed by SIGPIPE).

The commands are in kondge_billing/commands/, a module per group, each
registering its own arguments and handlers; this module builds the top
parser around them, runs the command asked for, and is the one place that
turns what ends a command into its message and exit status (OUTCOMES).
"""

import argparse
import os
import sys

import psycopg2

from . import __version__, commands, config
from .store import (audit, batches, callers, cards, categories, gateways, issuance, statements,
                    vouchers)
from .operations import stack
from .commands.common import EXIT_REFUSED, EXIT_UNAVAILABLE, CommandError
from .errors import Unavailable
from .store.pins import PinKeyError
from .rating.engine import RatingError

#: The errors of the domain that refuse what an operator asked: exit 1, their text.
REFUSALS = (CommandError, PinKeyError, cards.CardError, categories.CategoryError,
            gateways.GatewayError, batches.BatchError, issuance.IssueError,
            vouchers.RefillError, callers.CallerError, statements.StatementError,
            audit.OperatorError)

#: How a command that raises ends: the first row whose errors match gives the
#: exit status and the message (after "kondge: " on stderr). Anything else is
#: a fault, and Python prints its traceback.
OUTCOMES = (
    (REFUSALS, EXIT_REFUSED, str),
    ((RatingError,), EXIT_REFUSED, lambda exc: f"cannot rate this call: {exc}"),
    ((Unavailable,), EXIT_UNAVAILABLE,
     lambda exc: f"{exc}\nkondge: is the service running? 'make start' starts it"),
    ((stack.StackError,), EXIT_UNAVAILABLE, str),
    ((psycopg2.OperationalError,), EXIT_UNAVAILABLE,
     lambda exc: f"database unavailable: {str(exc).strip()}"),
    ((psycopg2.Error,), EXIT_REFUSED, lambda exc: f"the database refused: {str(exc).strip()}"),
)


EXIT_BROKEN_PIPE = 128 + 13


def outcome(exc: BaseException) -> tuple[int, str] | None:
    """(exit status, message) for an exception a command raised; None for a fault."""
    for errors, status, message in OUTCOMES:
        if isinstance(exc, errors):
            return status, message(exc)
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kondge",
        description="Kondge billing: prepaid calling cards behind FreeRADIUS.",
        epilog="Exit status: 0 done, 1 refused, 2 wrong usage, 3 database or service "
               "unavailable. Settings come from KONDGE_* environment variables "
               "(docs/operations.md, Settings).")
    # --json is accepted here or after the command (commands.common.command)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--version", action="version", version=f"kondge {__version__}")
    subparsers = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for module in commands.GROUPS:
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = config.load()
    try:
        status = args.func(args, settings)
        sys.stdout.flush()              # what is still buffered may meet a closed pipe too
        return status
    except BrokenPipeError:
        # the reader went away (`kondge cdrs list | head`): stop quietly, as
        # a program killed by SIGPIPE would, without a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        ended = outcome(exc)
        if ended is None:
            raise
        status, message = ended
        print(f"kondge: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())

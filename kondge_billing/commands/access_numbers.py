"""kondge access-numbers: the numbers callers dial in on, and what each allows.

The policies live with the callers (callers.py owns their SQL).
"""

from ..store import audit, callers
from .common import EXIT_OK, command, emit, group, in_transaction, operator_option, table


def register(commands):
    sub = group(commands, "access-numbers",
                "the numbers callers dial in on, and what each allows")
    p = command(sub, "add", cmd_add, "add an access number")
    _policy_options(p, description="", login="both")
    p = command(sub, "modify", cmd_modify, "change an access number's policy")
    _policy_options(p, description=None, login=None)
    command(sub, "list", cmd_list, "list access numbers and their policies")


def _policy_options(p, description, login):
    """The number and its policy; the defaults are add's (modify changes what is given)."""
    p.add_argument("number", help="as the gateway sends it in Called-Station-Id")
    p.add_argument("--description", default=description)
    p.add_argument("--login", choices=["card", "caller", "both"], default=login,
                   help="card: card number and PIN only; caller: bound callers only; "
                        "both (default)")
    p.add_argument("--language", help="prompt language for calls on this number")
    p.add_argument("--prompt-id", type=int, help="h323-prompt-id sent to the IVR")
    operator_option(p)


def cmd_add(args, s):
    operator = audit.operator_name(args.operator)
    return _changed(args, s, lambda cur: callers.add_access_number(
        cur, args.number, args.description, args.login, args.language, args.prompt_id,
        operator))


def cmd_modify(args, s):
    operator = audit.operator_name(args.operator)
    return _changed(args, s, lambda cur: callers.modify_access_number(
        cur, args.number, operator, description=args.description, login=args.login,
        language=args.language, prompt_id=args.prompt_id))


def cmd_list(args, s):
    rows = in_transaction(s, callers.list_access_numbers)
    emit(args, rows, table(rows, ["number", "login", "language", "prompt_id", "description"]))
    return EXIT_OK


def _changed(args, s, change):
    row = in_transaction(s, change)
    emit(args, row, [f"access number {row['number']}: login {row['login']}, language "
                     f"{row['language'] or '(the card’s)'}, prompt id {row['prompt_id']}"])
    return EXIT_OK

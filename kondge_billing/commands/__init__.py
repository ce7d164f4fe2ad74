"""The commands of `kondge`, one module per group (as pip's and Django's commands).

Each module's register(commands) adds its group (`kondge cards ...`), or its
command (`kondge rate`), to the top parser's subparsers: its arguments, help
and handler, a function (args, settings) -> exit status. common.py holds
what several modules share. cli.py builds the top parser around GROUPS, in
the order `kondge --help` lists them, runs the command, and turns what ends
it into a message and an exit status (cli.OUTCOMES).
"""

from . import (access_numbers, accounting, audit, backup, callers, cards, categories, cdrs,
               gateways, ha, rate, server, sessions, tariffs, vouchers)

GROUPS = (server, gateways, callers, access_numbers, cards, sessions, categories, vouchers,
          audit, cdrs, accounting, tariffs, rate, backup, ha)

"""The settings table in docs/operations.md is the one description of the
KONDGE_* environment variables: this checks it against the code.

- Each documented default is what the code uses: the table, written out as
  an environment, gives the same settings as an empty environment, and
  still does with each setting that other defaults are written with
  ($KONDGE_HOME, $KONDGE_VAR, ...) set to another value.
- Each documented variable is read (setting it changes something), so no
  row outlives its setting.
- Every KONDGE_* name the package, the hook, the FreeRADIUS configuration,
  the Makefile and the set-up script use is in the table, or in the table
  of variables the supervisor sets for FreeRADIUS; a setting added without
  documentation fails here.
- No other Markdown file, and no docstring of config.py, holds a second
  settings table.
"""

import ast
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from kondge_billing.edge import hook_profile
from kondge_billing.store import audit
from kondge_billing import config

HOME = Path(__file__).resolve().parents[2]
DOC = HOME / "docs" / "operations.md"
NAME = re.compile(r"KONDGE_[A-Z0-9_]+")
SETTINGS_HEADER = ["variable", "default", "meaning"]
SUPERVISOR_HEADER = ["variable", "set by the supervisor to"]

# Defaults the table describes in words rather than as a value, and what
# each is in the code.
DESCRIBED = {
    "KONDGE_HOME": lambda: str(config.PROJECT_HOME),
    "KONDGE_OPERATOR": audit.login_user,
    "KONDGE_PG_BIN": lambda: "",          # "found": unset, cluster.pg_bin looks for it
    "KONDGE_OPERATOR_USERS": lambda: "",  # "none"
    "KONDGE_HOOK_CPU": lambda: "",        # "none": off
}

# Settings read outside config.load(), each with a check that the reader
# takes the variable and otherwise the documented default.
READ_ELSEWHERE = {
    "KONDGE_OPERATOR": lambda env: audit.operator_name(None, env),
    # the benchmarks' count of the hook's CPU, read when the hook starts
    "KONDGE_HOOK_CPU": lambda env: getattr(hook_profile.HookCpu.from_env(env), "setting", ""),
}


def _tables(text: str):
    """Every Markdown table of `text`: (header cells, rows of cells)."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[i + 1]):
            header = _cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def _cells(line: str):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(header):
    found = [rows for head, rows in _tables(DOC.read_text()) if head == header]
    assert len(found) == 1, f"docs/operations.md: expected one table headed {header}"
    return found[0]


def _name(cell: str) -> str:
    match = re.fullmatch(r"`(KONDGE_[A-Z0-9_]+)`", cell)
    assert match, f"a variable cell should be `KONDGE_NAME`, not {cell!r}"
    return match.group(1)


def _settings():
    """{name: (default cell, meaning cell)} of the settings table."""
    rows = _table(SETTINGS_HEADER)
    table = {}
    for row in rows:
        assert len(row) == 3, row
        name = _name(row[0])
        assert name not in table, f"{name} is in the table twice"
        table[name] = (row[1], row[2])
    return table


def _default(name, table, given=None, seen=()):
    """The documented default of `name` as a value, each $KONDGE_X in it
    replaced by X's value in `given`, else by X's documented default."""
    given = given or {}
    if name in given:
        return given[name]
    cell = table[name][0]
    if not cell.startswith("`"):
        assert name in DESCRIBED, (
            f"{name}: its default {cell!r} is words; write the value in backticks")
        return DESCRIBED[name]()
    value = cell[1:cell.index("`", 1)]

    def expand(match):
        other = match.group(1)
        assert other in table and other not in seen + (name,), f"{name}: ${other} in its default"
        return _default(other, table, given, seen + (name,))

    return re.sub(r"\$(KONDGE_[A-Z0-9_]+)", expand, value)


def _documented_env(table, given=None):
    """`given`, and every other documented setting at its documented default."""
    given = given or {}
    env = dict(given)
    for name in table:
        if name not in READ_ELSEWHERE and name not in given:
            env[name] = _default(name, table, given)
    return env


def _referenced(table):
    """The settings other settings' defaults are made of ($KONDGE_X)."""
    return sorted({other for cell, _ in table.values()
                   for other in re.findall(r"\$(KONDGE_[A-Z0-9_]+)", cell)})


def _loaded(env):
    return config.load(env)


def _changed_fields(env):
    base, other = _loaded({}), _loaded(env)
    return {f for f in base.__dataclass_fields__ if getattr(base, f) != getattr(other, f)}


def _other_values(name, table):
    """Values to try for `name` that differ from its default."""
    default = _default(name, table)
    candidates = []
    try:
        candidates.append(str(Decimal(default) + 1))
    except InvalidOperation:
        pass
    candidates.append("/tmp/kondge-settings-check")      # an absolute path, or any text
    candidates += [t for t in re.findall(r"`([^`]+)`", table[name][1]) if t != default]
    return candidates


def _changes_something(name, value):
    try:
        return bool(_changed_fields({name: value}))
    except SystemExit:
        return False


def _read_by_load(name, table):
    """The Settings fields that `name` sets in config.load(), or an empty set."""
    for value in _other_values(name, table):
        if _changes_something(name, value):
            return _changed_fields({name: value})
    return set()


def _names_used():
    """{name: [where]} of every KONDGE_* name the code uses."""
    used = {}

    def note(name, where):
        used.setdefault(name, []).append(where)

    for path in [*sorted((HOME / "kondge_billing").rglob("*.py")),
                 *sorted((HOME / "mods-config").rglob("*.py"))]:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and NAME.fullmatch(node.value):
                note(node.value, str(path.relative_to(HOME)))
    for path in sorted(p for p in (HOME / "freeradius").rglob("*") if p.is_file()):
        for name in re.findall(r"\$ENV\{(KONDGE_[A-Z0-9_]+)\}", path.read_text()):
            note(name, str(path.relative_to(HOME)))
    for path in [HOME / "Makefile", *sorted((HOME / "scripts").glob("*"))]:
        for name in NAME.findall(path.read_text()):
            note(name, str(path.relative_to(HOME)))
    return used


def test_the_settings_table_has_rows():
    table = _settings()
    assert {"KONDGE_VAR", "KONDGE_LISTEN", "KONDGE_WORKERS"} <= set(table)


def _differences(env, given):
    documented, code = _loaded(env), _loaded(given)
    return {f: (getattr(documented, f), getattr(code, f))
            for f in code.__dataclass_fields__ if getattr(code, f) != getattr(documented, f)}


def test_the_documented_defaults_are_the_code_s():
    """The whole table as an environment loads the same settings as none."""
    wrong = _differences(_documented_env(_settings()), {})
    assert not wrong, f"documented defaults that are not the code's (documented, code): {wrong}"


@pytest.mark.parametrize("name", _referenced(_settings()))
def test_defaults_follow_the_settings_they_name(name):
    """With `name` set, the defaults written with $name still are the code's
    (e.g. the PIN key under KONDGE_HOME, not KONDGE_VAR)."""
    table = _settings()
    values = [v for v in _other_values(name, table) if _changes_something(name, v)]
    assert values, f"{name}: no value found that changes the settings"
    given = {name: values[0]}
    wrong = _differences(_documented_env(table, given), given)
    assert not wrong, f"with {given}, documented defaults that are not the code's: {wrong}"


@pytest.mark.parametrize("name", sorted(_settings()))
def test_each_documented_setting_is_read_and_its_default_holds(name):
    table = _settings()
    if name in READ_ELSEWHERE:
        read = READ_ELSEWHERE[name]
        assert read({}) == _default(name, table)
        assert read({name: "someone-else"}) == "someone-else"
        return
    fields = _read_by_load(name, table)
    assert fields, f"{name} is documented but config.load() does not read it"
    base, documented = _loaded({}), _loaded(_documented_env(table))
    for field in fields:
        assert getattr(documented, field) == getattr(base, field), (
            f"{name}: documented default {table[name][0]} gives {field}="
            f"{getattr(documented, field)!r}, the code {getattr(base, field)!r}")


def test_every_kondge_variable_the_code_uses_is_documented():
    settings = set(_settings())
    supervisor = {_name(row[0]) for row in _table(SUPERVISOR_HEADER)}
    assert not settings & supervisor, settings & supervisor
    missing = {name: where for name, where in _names_used().items()
               if name not in settings | supervisor}
    assert not missing, (
        "KONDGE_* names used but not in docs/operations.md's settings table "
        f"(or the supervisor's): {missing}")


def test_the_supervisor_s_variables_are_set_by_it_and_read_by_freeradius():
    """What the supervisor hands FreeRADIUS is no setting: config.load()
    does not read it, radius_processes.py sets it, a FreeRADIUS file reads it."""
    stack_names = set()
    tree = ast.parse((HOME / "kondge_billing" / "operations" / "radius_processes.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and NAME.fullmatch(node.value):
            stack_names.add(node.value)
    radius = set()
    for path in (HOME / "freeradius").rglob("*"):
        if path.is_file():
            radius |= set(re.findall(r"\$ENV\{(KONDGE_[A-Z0-9_]+)\}", path.read_text()))
    for row in _table(SUPERVISOR_HEADER):
        name = _name(row[0])
        assert name in stack_names, f"{name}: kondge_billing/operations/radius_processes.py does not set it"
        assert name in radius, f"{name}: no FreeRADIUS file reads it"
        assert not _changed_fields({name: "/tmp/kondge-settings-check"}), (
            f"{name} is read by config.load(): it is a setting")


def test_there_is_one_settings_table():
    row = re.compile(r"^\|\s*`?KONDGE_[A-Z0-9_]+`?\s*\|", re.M)
    skip = {".git", ".venv", "var", "build", "dist"}
    docs = [*HOME.glob("*.md")]
    for top in HOME.iterdir():
        if top.is_dir() and top.name not in skip and not top.name.endswith(".egg-info"):
            docs += top.rglob("*.md")
    others = [str(p.relative_to(HOME)) for p in docs if p != DOC and row.search(p.read_text())]
    assert not others, f"settings rows outside docs/operations.md: {others}"
    assert not row.search(config.__doc__ or ""), "config.py's docstring holds a settings table"
    assert "docs/operations.md" in (config.__doc__ or "")

"""Least privilege: what each database role may do, and nothing else.

The matrix below is every schema, table, view, sequence and function of
the kondge and reports schemas with the privileges each role holds on it
(docs/operations.md, Roles). It is compared with what the catalog says, so
a new object or a new grant that is not written here fails; then each role
tries, for real, everything the matrix does not give it.
"""

from decimal import Decimal

import psycopg2
import psycopg2.extras
import pytest

from kondge_billing.operations import demo

ROLES = ("kondge_operator", "kondge_radius", "kondge_web", "public")

# object                                      kondge_operator             kondge_radius  kondge_web  public
# (SELECT(-col): every column but col; '-': nothing; the owner, kondge, holds everything)
MATRIX = """
schema kondge                                 USAGE                       USAGE          USAGE       -
schema reports                                USAGE                       -              -           -
table kondge.access_number                    SELECT                      -              -           -
table kondge.audit_log                        SELECT                      -              -           -
table kondge.batch                            SELECT                      -              -           -
table kondge.call_leg                         SELECT                      -              -           -
table kondge.call_login                       SELECT                      -              -           -
table kondge.call_policy                      SELECT                      -              -           -
table kondge.caller                           SELECT                      -              -           -
table kondge.card                             SELECT(-pin_hash)           -              -           -
table kondge.category                         SELECT                      -              -           -
table kondge.cdr                              SELECT                      -              -           -
table kondge.gateway                          SELECT(-secret)             -              -           -
table kondge.ledger_entry                     SELECT                      -              -           -
table kondge.pin_guard                        SELECT                      -              -           -
table kondge.pin_policy                       SELECT                      -              -           -
table kondge.reservation                      SELECT                      -              -           -
table kondge.tariff                           SELECT                      -              -           -
table kondge.tariff_destination               SELECT                      -              -           -
table kondge.tariff_plan                      SELECT                      -              -           -
table kondge.tariff_prefix                    SELECT                      -              -           -
table kondge.tariff_rate                      SELECT                      -              -           -
table kondge.tariff_version                   SELECT                      -              -           -
table kondge.unprocessed_record               SELECT                      -              -           -
table kondge.voucher                          SELECT(-pin_hash)           -              -           -
table kondge.web_session                      SELECT                      -              -           -
view kondge.v_active_reservation              SELECT                      -              -           -
view kondge.v_balance_mismatch                SELECT                      -              -           -
view reports.asr_acd                          SELECT                      -              -           -
view reports.balance_liability                SELECT                      -              -           -
view reports.daily_revenue                    SELECT                      -              -           -
view reports.reconciliation                   SELECT                      -              -           -
view reports.top_destinations                 SELECT                      -              -           -
sequence kondge.audit_log_id_seq              -                           -              -           -
sequence kondge.batch_id_seq                  -                           -              -           -
sequence kondge.call_leg_id_seq               -                           -              -           -
sequence kondge.card_id_seq                   -                           -              -           -
sequence kondge.cdr_id_seq                    -                           -              -           -
sequence kondge.gateway_id_seq                -                           -              -           -
sequence kondge.gateway_revision              -                           -              -           -
sequence kondge.ledger_entry_id_seq           -                           -              -           -
sequence kondge.reservation_id_seq            -                           -              -           -
sequence kondge.serial_number                 -                           -              -           -
sequence kondge.tariff_destination_id_seq     -                           -              -           -
sequence kondge.tariff_id_seq                 -                           -              -           -
sequence kondge.tariff_plan_id_seq            -                           -              -           -
sequence kondge.tariff_version_id_seq         -                           -              -           -
sequence kondge.unprocessed_record_id_seq     -                           -              -           -
sequence kondge.voucher_id_seq                -                           -              -           -
function kondge.append_only                   -                           -              -           -
function kondge.audit_log_stamped             -                           -              -           -
function kondge.audit_operator                -                           -              -           -
function kondge.audit_record                  -                           -              -           -
function kondge.card_holds                    -                           -              -           -
function kondge.category_checked              -                           -              -           -
function kondge.category_json                 -                           -              -           -
function kondge.changes                       -                           -              -           -
function kondge.checked_amount                -                           -              -           -
function kondge.checked_operation             -                           -              -           -
function kondge.checked_pin_hash              -                           -              -           -
function kondge.gateway_audited               -                           -              -           -
function kondge.gateway_new_revision          -                           -              -           -
function kondge.kept_for_calls                -                           -              -           -
function kondge.op_access_number_add          EXECUTE                     -              -           -
function kondge.op_access_number_modify       EXECUTE                     -              -           -
function kondge.op_adjust                     EXECUTE                     -              -           -
function kondge.op_callers_bind               EXECUTE                     -              -           -
function kondge.op_callers_unbind             EXECUTE                     -              -           -
function kondge.op_card_add                   EXECUTE                     -              -           -
function kondge.op_card_modify                EXECUTE                     -              -           -
function kondge.op_category_add               EXECUTE                     -              -           -
function kondge.op_category_modify            EXECUTE                     -              -           -
function kondge.op_change_status              EXECUTE                     -              -           -
function kondge.op_expire                     EXECUTE                     -              -           -
function kondge.op_extend                     EXECUTE                     -              -           -
function kondge.op_issue                      EXECUTE                     -              -           -
function kondge.op_move                       EXECUTE                     -              -           -
function kondge.op_pin_unlock                 EXECUTE                     -              -           -
function kondge.op_refill                     EXECUTE                     -              -           -
function kondge.op_set_pin                    EXECUTE                     -              -           -
function kondge.op_top_up                     EXECUTE                     -              -           -
function kondge.op_transfer                   EXECUTE                     -              -           -
function kondge.pin_count                     -                           -              -           -
function kondge.pin_failed                    -                           -              -           -
function kondge.pin_lock_end                  -                           -              -           -
function kondge.pin_locked                    -                           -              -           -
function kondge.post_ledger                   -                           -              -           -
function kondge.prefixes_of                   EXECUTE                     -              -           -
function kondge.radius_account                -                           EXECUTE        -           -
function kondge.radius_auto_bind              -                           EXECUTE        -           -
function kondge.radius_card                   -                           EXECUTE        -           -
function kondge.radius_correct                -                           EXECUTE        -           -
function kondge.radius_hold                   -                           EXECUTE        -           -
function kondge.radius_park                   -                           EXECUTE        -           -
function kondge.radius_price                  -                           EXECUTE        -           -
function kondge.radius_settle                 -                           EXECUTE        -           -
function kondge.radius_settle_billed          -                           -              -           -
function kondge.rating_choice                 EXECUTE                     -              -           -
function kondge.rating_context                EXECUTE                     -              -           -
function kondge.rating_json                   EXECUTE                     -              -           -
function kondge.selected                      EXECUTE                     -              -           -
function kondge.tariff_in                     -                           -              -           -
function kondge.tariff_unchanged              -                           -              -           -
function kondge.tariff_version_audited        -                           -              -           -
function kondge.voucher_reactivated           -                           -              -           -
function kondge.web_calls                     -                           -              EXECUTE     -
function kondge.web_card                      -                           -              EXECUTE     -
function kondge.web_login                     -                           -              EXECUTE     -
function kondge.web_login_caller              -                           -              EXECUTE     -
function kondge.web_login_proven              -                           -              -           -
function kondge.web_logout                    -                           -              EXECUTE     -
function kondge.web_movements                 -                           -              EXECUTE     -
function kondge.web_pin_hash                  -                           -              -           -
function kondge.web_refill                    -                           -              EXECUTE     -
function kondge.web_session_card              -                           -              -           -
function kondge.web_set_language              -                           -              EXECUTE     -
function kondge.web_statement                 -                           -              EXECUTE     -
"""

PRIVILEGES = {
    "schema": ("USAGE", "CREATE"),
    "table": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
    "view": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
    "sequence": ("USAGE", "SELECT", "UPDATE"),
    "function": ("EXECUTE",),
}
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")

OBJECTS = """
SELECT 'schema' AS kind, n.nspname AS name, n.oid, NULL::text AS signature,
       pg_get_userbyid(n.nspowner) AS owner
  FROM pg_namespace n WHERE n.nspname IN ('kondge', 'reports')
UNION ALL
SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'S' THEN 'sequence'
                      ELSE 'view' END,
       n.nspname || '.' || c.relname, c.oid, NULL, pg_get_userbyid(c.relowner)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('kondge', 'reports') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
UNION ALL
SELECT 'function', n.nspname || '.' || p.proname, p.oid, p.oid::regprocedure::text,
       pg_get_userbyid(p.proowner)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('kondge', 'reports')
"""


def expected_matrix() -> dict:
    found = {}
    for line in MATRIX.strip().splitlines():
        kind, name, *cells = line.split()
        assert len(cells) == len(ROLES), line
        found[f"{kind} {name}"] = {role: set() if cell == "-" else set(cell.split(","))
                                   for role, cell in zip(ROLES, cells)}
    return found


def objects(cur) -> list[dict]:
    cur.execute(OBJECTS)
    return cur.fetchall()


def held(cur, obj: dict, role: str) -> set[str]:
    """What role holds on obj, as the matrix writes it."""
    kind, oid = obj["kind"], obj["oid"]
    check = {"schema": "has_schema_privilege", "sequence": "has_sequence_privilege",
             "function": "has_function_privilege"}.get(kind, "has_table_privilege")
    got = set()
    for privilege in PRIVILEGES[kind]:
        cur.execute(f"SELECT {check}(%s, %s::oid, %s) AS ok", (role, oid, privilege))
        if cur.fetchone()["ok"]:
            got.add(privilege)
        elif kind in ("table", "view") and privilege in COLUMN_PRIVILEGES:
            got |= column_grants(cur, oid, role, privilege)
    return got


def column_grants(cur, oid, role, privilege) -> set[str]:
    """A privilege held on columns, not on the table: {"P(-a,-b)"} (all but a, b),
    {"P(a,b)"} (a and b only) or {"P(*)"} (each column)."""
    cur.execute("""SELECT a.attname, has_column_privilege(%s, %s::oid, a.attnum, %s) AS ok
                     FROM pg_attribute a WHERE a.attrelid = %s::oid AND a.attnum > 0
                      AND NOT a.attisdropped ORDER BY a.attname""", (role, oid, privilege, oid))
    columns = cur.fetchall()
    with_it = [c["attname"] for c in columns if c["ok"]]
    without = [c["attname"] for c in columns if not c["ok"]]
    if not with_it:
        return set()
    if not without:
        return {f"{privilege}(*)"}        # every column, one by one
    shown = ",".join("-" + c for c in without) if len(without) < len(with_it) else ",".join(with_it)
    return {f"{privilege}({shown})"}


def as_role(dsn, role):
    conn = psycopg2.connect(dsn.replace("user=kondge", f"user={role}"))
    conn.autocommit = True
    return conn


@pytest.fixture
def world(db, pin_key):
    db.run(lambda cur: demo.load(cur, pin_key))
    return db


def differences(db) -> dict:
    """Every object whose privileges differ from the matrix (or that it does not name,
    or that is gone): {object: {role: held}}."""
    expected = expected_matrix()

    def actual(cur):
        return {f"{o['kind']} {o['name']}": {role: held(cur, o, role) for role in ROLES}
                for o in objects(cur)}
    found = db.run(actual)
    return {name: found.get(name) for name in set(found) | set(expected)
            if found.get(name) != expected.get(name)}


def test_every_object_and_privilege_is_the_matrix(db):
    assert differences(db) == {}
    owners = db.run(lambda cur: {o["name"]: o["owner"] for o in objects(cur)})
    assert set(owners.values()) == {"kondge"}
    names = [o["name"] for o in db.run(objects) if o["kind"] == "function"]
    assert len(names) == len(set(names)), "one function per name (the matrix names them so)"


def test_a_grant_or_a_table_the_matrix_does_not_name_fails_it(db):
    db.run(lambda cur: cur.execute(
        "GRANT SELECT (pin_hash) ON kondge.voucher TO kondge_operator;"
        "GRANT EXECUTE ON FUNCTION kondge.audit_record(text, text, bigint, jsonb, jsonb) "
        "TO kondge_radius; CREATE TABLE kondge.extra (x int)"))
    found = differences(db)
    assert set(found) == {"table kondge.voucher", "function kondge.audit_record",
                          "table kondge.extra"}
    assert found["table kondge.voucher"]["kondge_operator"] == {"SELECT(*)"}
    assert found["function kondge.audit_record"]["kondge_radius"] == {"EXECUTE"}


# --- each role tries, for real, everything the matrix does not give it ------------------

def attempts(obj: dict, privilege: str, cur) -> list[tuple[str, str | None]]:
    """(statement, the column it needs privilege on, if one) for each way of using
    privilege on obj."""
    name, kind = obj["name"], obj["kind"]
    if kind == "sequence":
        return [({"USAGE": f"SELECT nextval('{name}')",
                  "SELECT": f"SELECT last_value FROM {name}",
                  "UPDATE": f"SELECT setval('{name}', 1, false)"}[privilege], None)]
    if kind == "function":
        cur.execute("SELECT proargtypes::regtype[]::text[] AS args, prorettype::regtype::text "
                    "AS returns FROM pg_proc WHERE oid = %s", (obj["oid"],))
        row = cur.fetchone()
        if row["returns"] == "trigger":
            return []               # called only as a trigger (refused before any privilege)
        # (SELECT NULL): no constant the planner could fold a strict function's call away with
        return [(f"SELECT {name}(" + ", ".join(f"(SELECT NULL::{t})" for t in row["args"]) + ")",
                 None)]
    if kind == "schema":
        return [({"USAGE": f"SELECT '{name}.none'::regclass",
                  "CREATE": f"CREATE TABLE {name}.intruder (x int)"}[privilege], None)]
    cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum", (obj["oid"],))
    columns = [r["attname"] for r in cur.fetchall()]
    return {
        "SELECT": [(f"SELECT {c} FROM {name} LIMIT 0", c) for c in columns],
        "INSERT": [(f"INSERT INTO {name} DEFAULT VALUES", None)],
        "UPDATE": [(f"UPDATE {name} SET {c} = {c} WHERE false", c) for c in columns],
        "DELETE": [(f"DELETE FROM {name} WHERE false", None)],
        "TRUNCATE": [(f"TRUNCATE {name}", None)],
        "TRIGGER": [(f"CREATE TRIGGER intruder BEFORE UPDATE ON {name} FOR EACH STATEMENT "
                     "EXECUTE FUNCTION kondge.voucher_reactivated()", None)],
        "REFERENCES": [],           # only from a table of the role's own, which it cannot make
    }[privilege]


def may_use_column(allowed: set[str], privilege: str, column: str | None) -> bool:
    """allowed holds privilege on column alone ("SELECT(-pin_hash)": all but pin_hash)."""
    for entry in allowed:
        if column is not None and entry.startswith(privilege + "("):
            listed = entry[len(privilege) + 1:-1].split(",")
            if listed[0].startswith("-"):
                return "-" + column not in listed
            return column in listed
    return False


# a view that cannot be written, or a view with no such statement, refuses before privileges
REFUSED = (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.FeatureNotSupported,
           psycopg2.errors.ObjectNotInPrerequisiteState, psycopg2.errors.WrongObjectType)


@pytest.mark.parametrize("role", ["kondge_operator", "kondge_radius", "kondge_web"])
def test_each_role_is_refused_everything_else(world, dsn, role):
    expected = expected_matrix()
    conn = as_role(dsn, role)
    tried, done = 0, []
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            for obj in world.run(objects):
                allowed = expected[f"{obj['kind']} {obj['name']}"][role]
                refused = REFUSED if obj["kind"] == "view" else psycopg2.errors.InsufficientPrivilege
                for privilege in PRIVILEGES[obj["kind"]]:
                    if privilege in allowed:
                        continue
                    for sql, column in attempts(obj, privilege, cur):
                        if may_use_column(allowed, privilege, column):
                            continue
                        cur.execute("BEGIN")
                        try:
                            cur.execute(sql)
                            done.append(sql)
                        except refused:
                            pass
                        cur.execute("ROLLBACK")
                        tried += 1
    finally:
        conn.close()
    assert done == []
    assert tried > 200


# --- what the security review did, tried again ------------------------------------------

def denied(conn, sql, params=()):
    with conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege) as refused:
            cur.execute(sql, params)
    return str(refused.value)


def books(db) -> dict:
    """The balances, the ledger, the audit log and the reconciliation, to compare."""
    def read(cur):
        out = {}
        for name, sql in (("cards", "SELECT number, balance, pin_hash FROM kondge.card"),
                          ("ledger", "SELECT * FROM kondge.ledger_entry"),
                          ("audit", "SELECT * FROM kondge.audit_log"),
                          ("vouchers", "SELECT number, pin_hash, status FROM kondge.voucher"),
                          ("mismatch", "SELECT * FROM reports.reconciliation")):
            cur.execute(sql + " ORDER BY 1")
            out[name] = cur.fetchall()
        return out
    return db.run(read)


OPERATOR_ATTACKS = [
    ("UPDATE kondge.card SET balance = 1000 WHERE number = '1000000008'", "table card"),
    ("UPDATE kondge.card SET pin_hash = 'hmac-sha256$' || repeat('0', 64)", "table card"),
    ("INSERT INTO kondge.card (number, pin_hash, currency) VALUES ('5000000001', 'x', 'USD')",
     "table card"),
    ("SELECT pin_hash FROM kondge.card", "table card"),
    ("SELECT pin_hash FROM kondge.voucher", "table voucher"),
    ("SELECT * FROM kondge.voucher", "table voucher"),
    ("SELECT secret FROM kondge.gateway", "table gateway"),
    ("UPDATE kondge.ledger_entry SET amount = 1000", "table ledger_entry"),
    ("DELETE FROM kondge.ledger_entry", "table ledger_entry"),
    ("INSERT INTO kondge.ledger_entry (card_id, amount, kind, key, balance_after) "
     "VALUES (1, 1000, 'adjustment', 'x', 1010)", "table ledger_entry"),
    ("SELECT * FROM kondge.post_ledger(ARRAY[1::bigint], ARRAY[1000::numeric], 'adjustment', "
     "ARRAY['x'])", "function post_ledger"),
    ("UPDATE kondge.audit_log SET operator = 'nobody'", "table audit_log"),
    ("DELETE FROM kondge.audit_log", "table audit_log"),
    ("INSERT INTO kondge.audit_log (operator, action, count) VALUES ('x', 'y', 1)",
     "table audit_log"),
    ("SELECT kondge.audit_record('x', 'add card', 1, '{}', '{}')", "function audit_record"),
    ("UPDATE kondge.category SET auto_bind = true", "table category"),
    ("INSERT INTO kondge.caller (number, card_id) VALUES ('447700900123', 1)", "table caller"),
    ("DELETE FROM kondge.access_number", "table access_number"),
    ("UPDATE kondge.voucher SET status = 'active'", "table voucher"),
    ("INSERT INTO kondge.batch (name, category, kind, count, operator) "
     "VALUES ('b', 'standard', 'card', 1, 'x')", "table batch"),
    ("UPDATE kondge.gateway SET secret = 'x'", "table gateway"),
    ("SELECT kondge.radius_settle(1, 'k', 'k', 'originate', '', NULL, 1, true, NULL, NULL, "
     "NULL, NULL, NULL, NULL, 60, 60, NULL, '{}', 'd', NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
     "NULL, -5, 'USD', NULL, NULL)", "function radius_settle"),
]


@pytest.mark.parametrize("sql, what", OPERATOR_ATTACKS)
def test_the_operator_is_refused_what_the_review_did(world, dsn, sql, what):
    before = books(world)
    conn = as_role(dsn, "kondge_operator")
    try:
        assert f"permission denied for {what}" in denied(conn, sql)
    finally:
        conn.close()
    assert books(world) == before and before["mismatch"] == []


@pytest.mark.parametrize("sql", [
    "UPDATE kondge.ledger_entry SET amount = amount + 1000",
    "DELETE FROM kondge.ledger_entry",
    "TRUNCATE kondge.ledger_entry",
    "TRUNCATE kondge.card CASCADE",
    "UPDATE kondge.audit_log SET operator = 'nobody'",
    "DELETE FROM kondge.audit_log",
    "TRUNCATE kondge.audit_log",
])
def test_the_ledger_and_the_audit_log_are_append_only_for_the_owner_too(world, sql):
    before = books(world)
    assert before["ledger"] and before["audit"]
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="is append-only"):
        world.run(lambda cur: cur.execute(sql))
    assert books(world) == before


def test_an_audit_record_names_the_role_that_made_it_whatever_it_says(world):
    world.run(lambda cur: cur.execute(
        "INSERT INTO kondge.audit_log (operator, action, count, db_user, at) "
        "VALUES ('x', 'note', 0, 'kondge_operator', '2000-01-01')"))
    row = world.run(lambda cur: (cur.execute(
        "SELECT db_user, at > now() - interval '1 hour' AS now FROM kondge.audit_log "
        "WHERE action = 'note'"), cur.fetchone())[1])
    assert row == {"db_user": "kondge", "now": True}


# --- the call path's role: only what a call could do -----------------------------------

SETTLE = dict(gateway_id=1, call_id="abuse", leg="originate", acct_session_id="",
              user_name=None, caller=None, called=None, setup=None, connect=None,
              disconnect=None, session_time=60, duration=60, cause=None, flags=[], digest="x",
              destination="447911123456", access_number=None, category=None, version_id=None,
              plan_id=None, destination_id=None, rate_prefix=None, price=None,
              currency="USD", granted=None, authorised_at=None)


def card_id(db, number):
    return db.run(lambda cur: (cur.execute("SELECT id FROM kondge.card WHERE number = %s",
                                           (number,)), cur.fetchone())[1])["id"]


def settle_as_radius(dsn, **values):
    from kondge_billing.calls import cdrs
    from kondge_billing.store.db import Database
    radius = Database(dsn.replace("user=kondge", "user=kondge_radius"))
    try:
        return radius.run(lambda cur: cdrs.settle(cur, **dict(SETTLE, **values)))
    finally:
        radius.close()


@pytest.mark.parametrize("values", [
    {"cost": "-5.00"},                       # a credit dressed as a call
    {"cost": "1.00", "duration": -60},
    {"cost": "1.00", "price": "-0.10"},
], ids=["negative-cost", "negative-duration", "negative-price"])
def test_the_call_path_cannot_credit_a_card(world, dsn, values):
    before = books(world)
    with pytest.raises(psycopg2.errors.CheckViolation, match="must not be negative"):
        settle_as_radius(dsn, call_key="neg", hold_id=None,
                         card_id=card_id(world, "1000000008"), charge=True, **values)
    with pytest.raises(psycopg2.errors.CheckViolation, match="must not be negative"):
        radius = as_role(dsn, "kondge_radius")
        try:
            radius.cursor().execute("SELECT * FROM kondge.radius_correct(1, 'originate', '', "
                                    "now(), 60, 60, NULL, 'd', -5, '{}')")
        finally:
            radius.close()
    assert books(world) == before


def test_the_call_path_charges_no_call_without_a_hold_unless_told_to(world, dsn):
    victim = card_id(world, "1000000008")
    before = books(world)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="has no hold"):
        settle_as_radius(dsn, call_key="nohold", hold_id=None, card_id=victim, charge=True,
                         cost="9.00")
    assert books(world) == before
    # recorded, charged to nobody: what a call nobody authorised is by default
    done = settle_as_radius(dsn, call_key="nohold", hold_id=None, card_id=victim,
                            charge=False, cost="9.00")
    assert (done["outcome"], done["charge"]) == ("charged", 0)
    # KONDGE_UNAUTHORISED_CALLS=charge (the supervisor writes it at start): the card pays
    from kondge_billing.calls import cdrs
    world.run(lambda cur: cdrs.set_unauthorised_calls(cur, "charge"))
    done = settle_as_radius(dsn, call_key="nohold-2", call_id="abuse-2", hold_id=None,
                            card_id=victim, charge=True, cost="9.00")
    assert done["charge"] == 9
    assert books(world)["mismatch"] == []


def test_the_call_path_settles_a_hold_only_for_its_own_call_and_card(world, dsn, billing):
    from kondge_billing.edge.request import access_request
    grant = billing.authorize(billing.gateways.get("127.0.0.1"), access_request((
        ("User-Name", "1000000008"), ("User-Password", "1234"),
        ("Called-Station-Id", "447911123456"), ("h323-conf-id", "h323-conf-id=AB12"),
        ("Kondge-Gateway-Address", "127.0.0.1"))))
    assert grant.seconds > 0
    hold = world.run(lambda cur: (cur.execute(
        "SELECT id, call_key, card_id FROM kondge.reservation"), cur.fetchone())[1])
    other = card_id(world, "1000000016")
    before = books(world)
    for wrong in ({"card_id": other, "call_key": hold["call_key"]},          # another card
                  {"card_id": hold["card_id"], "call_key": "another-call"},  # another call
                  {"card_id": hold["card_id"], "call_key": hold["call_key"], "gateway_id": 2}):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="is not the hold"):
            settle_as_radius(dsn, hold_id=hold["id"], charge=True, cost="0.50", **wrong)
    assert books(world) == before
    done = settle_as_radius(dsn, hold_id=hold["id"], charge=True, cost="0.50",
                            card_id=hold["card_id"], call_key=hold["call_key"])
    assert done["charge"] == Decimal("0.50")
    assert books(world)["mismatch"] == []


@pytest.mark.parametrize("pairs, error", [
    ('{"User-Name": "x"}', "a JSON array"),
    ('[["Class", "' + "x" * 70000 + '"]]', "64 KiB"),
])
def test_the_call_path_parks_records_only_as_the_hook_does(world, dsn, pairs, error):
    radius = as_role(dsn, "kondge_radius")
    try:
        with pytest.raises(psycopg2.errors.InvalidParameterValue, match=error):
            radius.cursor().execute("SELECT kondge.radius_park(%s, 'boom')", (pairs,))
        radius.cursor().execute("SELECT kondge.radius_park(%s, 'boom')",
                                ('[["User-Name", "1000000008"]]',))
    finally:
        radius.close()
    parked = world.run(lambda cur: (cur.execute("SELECT pairs FROM kondge.unprocessed_record"),
                                    cur.fetchall())[1])
    assert parked == [{"pairs": [["User-Name", "1000000008"]]}]


def test_the_call_path_checks_one_pin_without_seeing_any_hash(world, dsn, pin_key):
    from datetime import datetime, timezone
    from kondge_billing.store import cards
    from kondge_billing.store.db import Database
    from kondge_billing.store.pins import pin_hash
    radius = Database(dsn.replace("user=kondge", "user=kondge_radius"))
    try:
        def lookup(pin):
            return radius.run(lambda cur: cards.for_call(
                cur, "1000000008", "18005550100", gateway_id=1, call_id="x",
                at=datetime.now(timezone.utc), pin_hash=pin_hash(pin_key, "1000000008", pin)))
        assert lookup("1234").number == "1000000008"
        assert lookup("9999") == cards.CallRefused("wrong-pin")
        row = radius.run(lambda cur: (cur.execute(
            "SELECT * FROM kondge.radius_card('1000000008', NULL, NULL, '', NULL, 1, 'x', NULL,"
            " NULL, now())"), cur.fetchone())[1])
        assert "pin_hash" not in row and not any(
            isinstance(v, str) and v.startswith("hmac-sha256$") for v in row.values())
        assert row["refusal"] == "wrong-pin" and row["balance"] is None
    finally:
        radius.close()


# --- the operators' functions check what they are given, whoever calls them -------------

HASH = "hmac-sha256$" + "0" * 64
OPERATOR_CALLS = [
    ("SELECT kondge.op_card_add('eve', '3000000004', %(hash)s, -5, 'USD', 'standard', 'en', "
     "NULL, NULL)", "zero or more"),
    ("SELECT kondge.op_card_add('eve', '3000000004', %(hash)s, 'NaN', 'USD', 'standard', 'en', "
     "NULL, NULL)", "is no amount"),
    ("SELECT kondge.op_card_add('eve', '3000000004', 'plain-1234', 5, 'USD', 'standard', 'en', "
     "NULL, NULL)", "keyed hash"),
    ("SELECT kondge.op_card_add('eve', '3000000004', %(hash)s, 5, 'EUR', 'standard', 'en', "
     "NULL, NULL)", "no calling-card category in EUR"),
    ("SELECT kondge.op_card_add('', '3000000004', %(hash)s, 5, 'USD', 'standard', 'en', "
     "NULL, NULL)", "operator: 1 to 64"),
    ("SELECT kondge.op_card_add(repeat('x', 65), '3000000004', %(hash)s, 5, 'USD', 'standard', "
     "'en', NULL, NULL)", "operator: 1 to 64"),
    ("SELECT * FROM kondge.op_top_up('eve', '{\"numbers\": [\"1000000008\"]}', -1000, 'USD', "
     "'t1')", "above zero"),
    ("SELECT * FROM kondge.op_top_up('eve', '{\"numbers\": [\"1000000008\"]}', 1, 'EUR', 't1')",
     "needs cards in EUR"),
    ("SELECT * FROM kondge.op_top_up('eve', '{}', 1, 'USD', 't1')", "say which cards"),
    ("SELECT * FROM kondge.op_top_up('eve', '{\"numbers\": [\"1000000008\"], \"kind\": "
     "\"voucher\"}', 1, 'USD', 't1')", "only calling cards"),
    ("SELECT * FROM kondge.op_change_status('eve', 'steal', '{\"numbers\": [\"1000000008\"]}')",
     "activate, suspend or cancel"),
    ("SELECT * FROM kondge.op_change_status('eve', 'activate', '{\"number\": \"1000000032\"}')",
     "not number"),
    ("SELECT * FROM kondge.op_adjust('eve', '1000000008', -10.01, 'USD', 'adjustment', 'x', "
     "'a1')", "would take more than it has"),
    ("SELECT * FROM kondge.op_adjust('eve', '1000000008', -1, 'USD', 'refund', 'x', 'a1')",
     "above zero"),
    ("SELECT * FROM kondge.op_adjust('eve', '1000000008', 1, 'USD', 'issue', 'x', 'a1')",
     "adjustment or a refund"),
    ("SELECT * FROM kondge.op_transfer('eve', '1000000008', '1000000008', 1, 'USD', 'x', 't1')",
     "needs two cards"),
    ("SELECT * FROM kondge.op_transfer('eve', '1000000008', '1000000016', 10.01, 'USD', 'x', "
     "'t1')", "cannot give"),
    ("SELECT * FROM kondge.op_expire('eve', now() + interval '1 year')", "lies ahead"),
    ("SELECT kondge.op_set_pin('eve', '1000000008', '1234')", "keyed hash"),
    ("SELECT * FROM kondge.op_issue('eve', 'standard', 'b1', true, NULL, "
     "ARRAY['123456789012', '123456789012'], ARRAY[%(hash)s, %(hash)s])", "distinct numbers"),
    ("SELECT * FROM kondge.op_issue('eve', 'standard', 'b1', true, NULL, ARRAY['123456789012'], "
     "ARRAY['x'])", "keyed hash"),
    ("SELECT * FROM kondge.op_issue('eve', 'standard', 'b1', true, NULL, "
     "ARRAY['1000000008'], ARRAY[%(hash)s])", "duplicate key"),
    ("SELECT kondge.op_category_add('eve', 'free', '{\"face_value\": -5}')",
     "category_face_value_check"),
    ("SELECT kondge.op_category_add('eve', 'free', '{\"tariff_id\": 1}')", "no field tariff_id"),
    ("SELECT kondge.op_category_modify('eve', 'standard', '{\"currency\": \"EUR\"}')",
     "stay as they were sold"),
    ("SELECT * FROM kondge.op_callers_bind('eve', '1999999996', ARRAY['447700900123'])",
     "no card"),
]


@pytest.mark.parametrize("sql, says", OPERATOR_CALLS,
                         ids=[f"{sql.split('kondge.')[1].split('(')[0]}-{says}"
                              for sql, says in OPERATOR_CALLS])
def test_the_operators_functions_refuse_what_the_tool_would(world, dsn, sql, says):
    before = books(world)
    conn = as_role(dsn, "kondge_operator")
    try:
        with pytest.raises(psycopg2.Error, match=says) as refused:
            conn.cursor().execute(sql, {"hash": HASH})
        assert refused.value.pgcode[:2] in ("22", "23", "P0", "42")
    finally:
        conn.close()
    assert books(world) == before

-- Least privilege: exactly what each role may do (docs/operations.md,
-- Roles; tests/db/test_roles.py holds the whole matrix and fails for any
-- privilege, table or function it does not name). The roles are made by
-- the set-up (`kondge server start`) before the migrations run; this file
-- is applied after the migrations and the functions at every start, and
-- first takes everything back, so that what is granted is what it says.
--
--   kondge           owns the schema: migrations, tariffs, gateways. The
--                    ledger and the audit log are append-only even for it
--                    (sql/functions/append_only.sql).
--   kondge_operator  reads what the operator's tool shows (no PIN hash, no
--                    gateway secret) and changes cards, categories,
--                    batches, vouchers, callers and access numbers only
--                    through the op_* functions: each checks the change,
--                    moves money only through the ledger (post_ledger) and
--                    writes its audit record in the same transaction.
--   kondge_radius    the call path only: the radius_* functions; it reads no
--                    table, so it can neither read PIN hashes nor change a
--                    tariff.
--   kondge_web       the card holders' web portal only: the web_* functions,
--                    each of which takes a card's proof (its number and PIN
--                    hash, or a session token the database issued) and
--                    answers for that card alone; it reads no table.

-- Nobody but the owner has anything by default, functions made later included.
REVOKE ALL ON SCHEMA kondge, reports FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA kondge, reports FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- Start from nothing (revoking a table's privilege revokes its columns' too).
REVOKE ALL ON SCHEMA kondge, reports FROM kondge_operator, kondge_radius, kondge_web;
REVOKE ALL ON ALL TABLES IN SCHEMA kondge, reports FROM kondge_operator, kondge_radius, kondge_web;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA kondge, reports FROM kondge_operator, kondge_radius, kondge_web;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA kondge, reports FROM kondge_operator, kondge_radius, kondge_web;

-- The call path: its functions, nothing else (each is SECURITY DEFINER and
-- answers for one call; see sql/functions/radius_*.sql).
GRANT USAGE ON SCHEMA kondge TO kondge_radius;
GRANT EXECUTE ON FUNCTION
    kondge.radius_card(text, text, text, text, text, integer, text, text, text, timestamptz),
    kondge.radius_hold(bigint, integer, text, text, text, text, text, integer, integer, integer,
                       text, text, numeric, integer, integer),
    kondge.radius_account(text, integer, text, text, boolean, text, text, text, text, text, text,
                          text, text, timestamptz, timestamptz, timestamptz, integer, text,
                          text[], text),
    kondge.radius_settle(integer, text, text, text, text, bigint, bigint, boolean, text, text,
                         text, timestamptz, timestamptz, timestamptz, integer, integer, text,
                         text[], text, text, text, text, integer, integer, integer, text,
                         numeric, numeric, text, integer, timestamptz),
    kondge.radius_correct(bigint, text, text, timestamptz, integer, integer, text, text, numeric,
                          text[]),
    kondge.radius_park(jsonb, text),
    kondge.radius_auto_bind(bigint, text, integer, text),
    kondge.radius_price(integer, integer, integer, text)
   TO kondge_radius;

-- The web portal: its functions, nothing else (sql/functions/web_*.sql).
GRANT USAGE ON SCHEMA kondge TO kondge_web;
GRANT EXECUTE ON FUNCTION
    kondge.web_login(text, text, text),
    kondge.web_login_caller(text, text, text, text),
    kondge.web_logout(text),
    kondge.web_card(text),
    kondge.web_calls(text, timestamptz, timestamptz, integer, integer),
    kondge.web_movements(text, integer, integer),
    kondge.web_refill(text, text, text, text),
    kondge.web_set_language(text, text),
    kondge.web_statement(text, timestamptz, timestamptz)
   TO kondge_web;

-- Operators read every table and view of both schemas, but no secret: a
-- card's or a voucher's PIN hash, a gateway's RADIUS secret (every other
-- column, the ones a migration adds later too).
GRANT USAGE ON SCHEMA kondge, reports TO kondge_operator;
GRANT SELECT ON ALL TABLES IN SCHEMA kondge, reports TO kondge_operator;
REVOKE SELECT ON kondge.card, kondge.voucher, kondge.gateway FROM kondge_operator;
DO $$
DECLARE
    v_secret record;
BEGIN
    FOR v_secret IN SELECT * FROM (VALUES ('card', 'pin_hash'), ('voucher', 'pin_hash'),
                                          ('gateway', 'secret')) AS s(tab, col) LOOP
        EXECUTE format('GRANT SELECT (%s) ON kondge.%I TO kondge_operator',
                       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                          FROM pg_attribute a
                         WHERE a.attrelid = format('kondge.%I', v_secret.tab)::regclass
                           AND a.attnum > 0 AND NOT a.attisdropped
                           AND a.attname <> v_secret.col),
                       v_secret.tab);
    END LOOP;
END;
$$;

-- Operators change things only through these (sql/functions/op_*.sql), see
-- which cards a selection takes before they change them, and rate calls
-- with the tariffs (kondge rate, tariffs diff).
GRANT EXECUTE ON FUNCTION
    kondge.op_card_add(text, text, text, numeric, text, text, text, timestamptz, text),
    kondge.op_card_modify(text, text, jsonb),
    kondge.op_set_pin(text, text, text),
    kondge.op_issue(text, text, text, boolean, text, text[], text[]),
    kondge.op_change_status(text, text, jsonb),
    kondge.op_extend(text, jsonb, integer, timestamptz),
    kondge.op_move(text, jsonb, text),
    kondge.op_top_up(text, jsonb, numeric, text, text),
    kondge.op_adjust(text, text, numeric, text, text, text, text),
    kondge.op_transfer(text, text, text, numeric, text, text, text),
    kondge.op_refill(text, text, text, text),
    kondge.op_expire(text, timestamptz),
    kondge.op_category_add(text, text, jsonb),
    kondge.op_category_modify(text, text, jsonb),
    kondge.op_callers_bind(text, text, text[]),
    kondge.op_callers_unbind(text, text[]),
    kondge.op_access_number_add(text, text, text, text, text, integer),
    kondge.op_access_number_modify(text, text, jsonb),
    kondge.op_pin_unlock(text, text, text, text),
    kondge.selected(jsonb),
    kondge.rating_context(text, text, text, text, integer, timestamptz, integer, integer),
    kondge.rating_choice(text, text, text, text, integer, timestamptz, integer, integer),
    kondge.rating_json(integer, integer, integer, text, text, text, text, integer),
    kondge.prefixes_of(text)
   TO kondge_operator;

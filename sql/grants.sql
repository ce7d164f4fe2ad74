-- Least privilege: what each role may do. The roles are made by the set-up
-- (`kondge server start`) before the migrations run; this file is applied
-- after the migrations and the functions at every start, so that new
-- tables and functions are covered.
--
--   kondge           owns the schema: migrations, tariffs, gateways (admin)
--   kondge_operator  issues and changes cards, reads reports
--   kondge_radius    the call path only: the radius_* functions; it reads no
--                    table, so it can neither read PIN hashes nor change a
--                    tariff
--
-- kondge (the owner) has everything; nobody else has anything by default.
REVOKE ALL ON SCHEMA kondge FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA kondge FROM PUBLIC;

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
    kondge.radius_auto_bind(bigint, text, integer, text)
   TO kondge_radius;

-- Operators: cards, categories, batches, vouchers, callers, access numbers
-- and the audit log; they read everything else they need (CDRs, tariffs,
-- gateways without writing them, the reports); no tariff or gateway changes.
GRANT USAGE ON SCHEMA kondge TO kondge_operator;
GRANT SELECT ON ALL TABLES IN SCHEMA kondge TO kondge_operator;
REVOKE SELECT ON kondge.gateway FROM kondge_operator;
GRANT SELECT (id, name, address, dialect, message_authenticator, billed_leg,
              prepaid_billing_model, country_code, international_prefix, national_prefix,
              language_map, created_at, removed_at, revision) ON kondge.gateway TO kondge_operator;
GRANT INSERT, UPDATE ON kondge.card, kondge.category, kondge.caller, kondge.access_number,
                        kondge.ledger_entry, kondge.audit_log, kondge.batch, kondge.voucher
   TO kondge_operator;
GRANT DELETE ON kondge.caller, kondge.reservation TO kondge_operator;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA kondge TO kondge_operator;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA kondge TO kondge_operator;
-- the call path's functions are the call path's
REVOKE EXECUTE ON FUNCTION
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
                          text[])
   FROM kondge_operator;
GRANT USAGE ON SCHEMA reports TO kondge_operator;
GRANT SELECT ON ALL TABLES IN SCHEMA reports TO kondge_operator;

-- PIN hashes stay in the database: operators read cards without them.
REVOKE SELECT ON kondge.card FROM kondge_operator;
GRANT SELECT (id, number, balance, currency, status, expires_at, category, language, tariff_id,
              created_at, first_used_at, batch_id, serial, activated_at,
              pin_failures, pin_locks, pin_locked_until)
   ON kondge.card TO kondge_operator;

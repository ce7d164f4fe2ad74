-- Privileges of the roles (see migrations/0007_roles.sql), applied after
-- every migration run, so that new tables and functions are covered.
-- kondge (the owner) has everything; nobody else has anything by default.
REVOKE ALL ON SCHEMA kondge FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA kondge FROM PUBLIC;

-- The call path: its functions, nothing else.
GRANT USAGE ON SCHEMA kondge TO kondge_radius;
GRANT EXECUTE ON FUNCTION kondge.radius_card(text, text, text, text, text, integer, text, text,
                                             timestamptz),
                          kondge.radius_rate_for_stop(text, integer, text, text, text,
                                                      timestamptz),
                          kondge.radius_gateways(),
                          kondge.radius_park(jsonb, text),
                          kondge.radius_auto_bind(bigint, text),
                          kondge.radius_hold(bigint, integer, text, text, text, numeric, integer,
                                             integer),
                          kondge.record_leg(text, integer, text, text, text, text, text, text,
                                            timestamptz, timestamptz, timestamptz, integer, text,
                                            text[], boolean, text, text, numeric, text, integer,
                                            text, numeric)
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
REVOKE EXECUTE ON FUNCTION kondge.radius_card(text, text, text, text, text, integer, text, text,
                                              timestamptz) FROM kondge_operator;
GRANT USAGE ON SCHEMA reports TO kondge_operator;
GRANT SELECT ON ALL TABLES IN SCHEMA reports TO kondge_operator;

-- PIN hashes stay in the database: operators read cards without them.
REVOKE SELECT ON kondge.card FROM kondge_operator;
GRANT SELECT (id, number, balance, currency, status, expires_at, category, language, tariff_id,
              created_at, first_used_at, batch_id, serial, activated_at)
   ON kondge.card TO kondge_operator;

-- The call path hands back a call's rating by its ids (the tariff version,
-- plan and destination, and the prefix that matched) instead of the whole
-- rating built again for every call: each process keeps the ratings it has
-- read (kondge_billing/store/prices.py; a loaded tariff version never
-- changes, sql/functions/tariff_unchanged.sql). The results of these two
-- change (sql/functions/radius_card.sql, radius_account.sql).
SET search_path = kondge, public;

DROP FUNCTION IF EXISTS radius_card(text, text, text, text, text, integer, text, text, text,
                                    timestamptz);
DROP FUNCTION IF EXISTS radius_account(text, integer, text, text, boolean, text, text, text,
                                       text, text, text, text, text, timestamptz, timestamptz,
                                       timestamptz, integer, text, text[], text);

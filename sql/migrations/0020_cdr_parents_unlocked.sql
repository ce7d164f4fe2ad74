-- A CDR names its gateway and its tariff version without a foreign key
-- check on every call. The check locked the gateway's row and the version's
-- (FOR KEY SHARE) for each CDR written: a WAL record each and, with calls
-- of the same gateway settling at once, a multixact on the gateway's row
-- (bench/ab.py: 1-2.6 % of the call path's PostgreSQL CPU and 112 bytes of
-- WAL a call, docs/performance.md). The parents keep their CDRs instead: a
-- tariff version is never changed or deleted (sql/functions/
-- tariff_unchanged.sql), and a gateway that call records name is never
-- deleted nor its id changed (kept_for_calls.sql, which the legs and holds
-- relied on already, now looks at the CDRs too). The CDR's card keeps its
-- foreign key: the card's row is locked for the charge anyway.
SET search_path = kondge, public;

ALTER TABLE cdr DROP CONSTRAINT IF EXISTS cdr_gateway_id_fkey;
ALTER TABLE cdr DROP CONSTRAINT IF EXISTS cdr_tariff_version_id_fkey;

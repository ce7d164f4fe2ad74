-- Who changed what, and what the call path may charge.
--
-- Every change an operator makes goes through a SECURITY DEFINER function
-- (sql/functions/op_*.sql) that checks it, makes it and writes its audit
-- record in the same transaction; gateway changes and tariff loads are
-- audited by triggers (gateway_audited.sql, tariff_version_audited.sql).
-- An audit record names the operator the command named and, since this
-- migration, the database role that made it (db_user: session_user, which
-- a session cannot change; set by audit_log_stamped.sql). Records older
-- than this migration have none. The audit log and the ledger are
-- append-only (append_only.sql).
SET search_path = kondge, public;

ALTER TABLE audit_log ADD COLUMN db_user text;
COMMENT ON COLUMN audit_log.db_user IS
    'the database role that made the change (session_user); NULL before migration 0016';
COMMENT ON COLUMN audit_log.operator IS
    'the person the command named (--operator, KONDGE_OPERATOR, the login user)';
CREATE INDEX audit_log_action ON audit_log (action, id);

-- What the call path may charge without an authorisation (a hold): a call
-- nobody authorised is charged to the card its User-Name names only when
-- this says 'charge' (KONDGE_UNAUTHORISED_CALLS, written by the supervisor
-- at every start). The call path's role cannot change it, so it cannot
-- charge a card that no call authorised unless the operator chose so.
CREATE TABLE call_policy (
    only_row           boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    unauthorised_calls text NOT NULL DEFAULT 'record'
                       CHECK (unauthorised_calls IN ('record', 'charge'))
);
INSERT INTO call_policy DEFAULT VALUES;

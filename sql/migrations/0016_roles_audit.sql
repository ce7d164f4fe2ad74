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

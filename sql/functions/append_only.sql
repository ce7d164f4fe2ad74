-- The ledger and the audit log are append-only, for every role, the owner
-- too: an UPDATE, DELETE or TRUNCATE of either is refused. A wrong ledger
-- entry is corrected by a new one (kondge cards adjust); an audit record is
-- never changed. There is no retention path: removing rows would take the
-- owner disabling these triggers on purpose (ALTER TABLE ... DISABLE
-- TRIGGER), which no code of the service does.
CREATE OR REPLACE FUNCTION kondge.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only: % refused (%)',
                    TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, TG_ARGV[0]
          USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE ON kondge.ledger_entry
    FOR EACH ROW EXECUTE FUNCTION kondge.append_only(
        'a movement is corrected by a new entry: kondge cards adjust');
CREATE OR REPLACE TRIGGER append_only_truncate BEFORE TRUNCATE ON kondge.ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION kondge.append_only(
        'a movement is corrected by a new entry: kondge cards adjust');
CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE ON kondge.audit_log
    FOR EACH ROW EXECUTE FUNCTION kondge.append_only('audit records are never changed');
CREATE OR REPLACE TRIGGER append_only_truncate BEFORE TRUNCATE ON kondge.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION kondge.append_only('audit records are never changed');

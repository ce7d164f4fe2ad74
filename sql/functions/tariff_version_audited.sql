-- Every tariff version loaded is an audit record, however it is loaded
-- (kondge tariffs load, the demo set, the owner in psql): who
-- (audit_operator), which tariff and version, from which file (its name
-- and SHA-256: the version keeps the file itself), from when it applies,
-- and whether the tariff is the default one.
CREATE OR REPLACE FUNCTION kondge.tariff_version_audited() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kondge.audit_record(kondge.audit_operator(), 'load tariff', 1,
        jsonb_build_object('tariff', t.name, 'version', NEW.version),
        jsonb_build_object('version_id', NEW.id, 'valid_from', NEW.valid_from,
                           'currency', NEW.currency, 'file', NEW.source_name,
                           'sha256', NEW.sha256, 'default', t.is_default))
       FROM kondge.tariff t WHERE t.id = NEW.tariff_id;
    RETURN NULL;
END;
$$;
CREATE OR REPLACE TRIGGER tariff_version_audited AFTER INSERT ON kondge.tariff_version
    FOR EACH ROW EXECUTE FUNCTION kondge.tariff_version_audited();

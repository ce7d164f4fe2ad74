-- A loaded tariff version never changes and never goes: an UPDATE or a
-- DELETE of a version, its plans, destinations, prefixes or rates is
-- refused, for every role, the owner too. A change of prices is a new
-- version (kondge tariffs load), in force from its valid_from (a version
-- loaded by mistake is put out of force by loading another); the calls and
-- CDRs priced by the old one keep it. The call path's processes rely on it:
-- each keeps the ratings it has read, by their ids
-- (kondge_billing/store/prices.py), and a CDR names its version without a
-- foreign key check on every call (migration 0020).
CREATE OR REPLACE FUNCTION kondge.tariff_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.%: a loaded tariff version never changes: % refused (load a new '
                    'version with kondge tariffs load)', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
          USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE OR REPLACE TRIGGER tariff_unchanged BEFORE UPDATE OR DELETE ON kondge.tariff_version
    FOR EACH ROW EXECUTE FUNCTION kondge.tariff_unchanged();
CREATE OR REPLACE TRIGGER tariff_unchanged BEFORE UPDATE OR DELETE ON kondge.tariff_plan
    FOR EACH ROW EXECUTE FUNCTION kondge.tariff_unchanged();
CREATE OR REPLACE TRIGGER tariff_unchanged BEFORE UPDATE OR DELETE ON kondge.tariff_destination
    FOR EACH ROW EXECUTE FUNCTION kondge.tariff_unchanged();
CREATE OR REPLACE TRIGGER tariff_unchanged BEFORE UPDATE OR DELETE ON kondge.tariff_prefix
    FOR EACH ROW EXECUTE FUNCTION kondge.tariff_unchanged();
CREATE OR REPLACE TRIGGER tariff_unchanged BEFORE UPDATE OR DELETE ON kondge.tariff_rate
    FOR EACH ROW EXECUTE FUNCTION kondge.tariff_unchanged();

-- Every change to a gateway gets a new revision number (see gateway.revision).
CREATE OR REPLACE FUNCTION kondge.gateway_new_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := nextval('kondge.gateway_revision');
    RETURN NEW;
END;
$$;
CREATE OR REPLACE TRIGGER gateway_new_revision BEFORE UPDATE ON kondge.gateway
    FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION kondge.gateway_new_revision();

-- Every change to a gateway (added, modified, removed) gets a new revision
-- number, so that the servers can tell which state of the gateway table
-- they serve: the supervisor hands the FreeRADIUS workers the table at a
-- revision (var/radius/gateways.json), and `kondge gateways add/modify/
-- remove` waits until a running server serves the revision it committed.
SET search_path = kondge, public;

CREATE SEQUENCE gateway_revision;
ALTER TABLE gateway ADD COLUMN revision bigint NOT NULL DEFAULT nextval('gateway_revision');

CREATE FUNCTION gateway_new_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := nextval('kondge.gateway_revision');
    RETURN NEW;
END;
$$;
CREATE TRIGGER gateway_new_revision BEFORE UPDATE ON gateway
    FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION gateway_new_revision();

-- Gateways and tariff versions are never deleted (a removed gateway keeps
-- its row, with removed_at; a version, tariff_unchanged.sql). The call
-- records (call_leg, reservation, cdr) name their gateway without a foreign
-- key, so that the call path takes no lock on the gateway's row for every
-- record (with calls at once, a new MultiXact nearly every time; for the
-- CDRs since migration 0020). This trigger keeps those names true: a
-- gateway a call record names cannot be deleted, re-numbered or truncated.
-- Only the call path's SECURITY DEFINER functions write call records, with
-- ids they have just read; a CDR being written at this moment has its
-- call's hold or leg already committed.
CREATE OR REPLACE FUNCTION kondge.kept_for_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM kondge.call_leg WHERE TG_OP = 'TRUNCATE' OR gateway_id = OLD.id)
       OR EXISTS (SELECT 1 FROM kondge.reservation
                   WHERE TG_OP = 'TRUNCATE' OR gateway_id = OLD.id)
       OR EXISTS (SELECT 1 FROM kondge.cdr WHERE TG_OP = 'TRUNCATE' OR gateway_id = OLD.id) THEN
        RAISE EXCEPTION 'call records name this gateway: it stays (kondge gateways remove '
                        'retires a gateway)' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD WHEN 'UPDATE' THEN NEW END;
END;
$$;
CREATE OR REPLACE TRIGGER kept_for_calls BEFORE DELETE OR UPDATE OF id ON kondge.gateway
    FOR EACH ROW EXECUTE FUNCTION kondge.kept_for_calls();
CREATE OR REPLACE TRIGGER kept_for_calls_truncate BEFORE TRUNCATE ON kondge.gateway
    FOR EACH STATEMENT EXECUTE FUNCTION kondge.kept_for_calls();

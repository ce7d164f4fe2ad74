-- Every change to a gateway is an audit record, however it is made (kondge
-- gateways add, modify, remove; the owner in psql): who (audit_operator:
-- the operator the transaction named, else the database role), which
-- gateway, and what changed; a secret is never shown, only that it
-- changed. A retired gateway (removed_at) is a 'remove gateway'.
CREATE OR REPLACE FUNCTION kondge.gateway_audited() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_hidden CONSTANT text[] := ARRAY['secret', 'revision', 'created_at', 'removed_at', 'id'];
    v_old    jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    v_new    jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    v_action text;
    v_details jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_action := 'add gateway';
        v_details := v_new - v_hidden;
    ELSIF TG_OP = 'DELETE' THEN
        v_action := 'delete gateway';
        v_details := v_old - v_hidden;
    ELSE
        v_action := CASE WHEN OLD.removed_at IS NULL AND NEW.removed_at IS NOT NULL
                         THEN 'remove gateway' ELSE 'modify gateway' END;
        v_details := jsonb_build_object('changes',
            kondge.changes(v_old - v_hidden, v_new - v_hidden)
            || CASE WHEN OLD.secret IS DISTINCT FROM NEW.secret
                    THEN '{"secret": "changed"}'::jsonb ELSE '{}' END);
    END IF;
    PERFORM kondge.audit_record(kondge.audit_operator(), v_action, 1,
        jsonb_build_object('gateway', coalesce(v_new, v_old)->>'name'), v_details);
    RETURN NULL;
END;
$$;
CREATE OR REPLACE TRIGGER gateway_audited AFTER INSERT OR UPDATE OR DELETE ON kondge.gateway
    FOR EACH ROW EXECUTE FUNCTION kondge.gateway_audited();

-- An operator changes an access number's policy (kondge_billing/
-- callers.py: modify_access_number): p_changes holds only the fields to
-- change (description, login, language, prompt_id; null language or
-- prompt id: none). One audit record with each field's old and new value.
CREATE OR REPLACE FUNCTION kondge.op_access_number_modify(p_operator text, p_number text,
                                                          p_changes jsonb)
RETURNS SETOF kondge.access_number
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_old     kondge.access_number%ROWTYPE;
    v_new     kondge.access_number%ROWTYPE;
    v_unknown text;
BEGIN
    SELECT string_agg(k, ', ') INTO v_unknown FROM jsonb_object_keys(p_changes) k
     WHERE k NOT IN ('description', 'login', 'language', 'prompt_id');
    IF v_unknown IS NOT NULL OR p_changes = '{}' THEN
        RAISE EXCEPTION 'an access number changes description, login, language or prompt_id, '
                        'not %', coalesce(v_unknown, 'nothing')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_old FROM kondge.access_number WHERE number = p_number FOR UPDATE;
    IF v_old.number IS NULL THEN
        RAISE EXCEPTION 'no access number %; add it first', p_number
              USING ERRCODE = 'no_data_found';
    END IF;
    v_new := jsonb_populate_record(v_old, p_changes);
    UPDATE kondge.access_number
       SET description = v_new.description, login = v_new.login, language = v_new.language,
           prompt_id = v_new.prompt_id
     WHERE number = p_number RETURNING * INTO v_new;
    PERFORM kondge.audit_record(p_operator, 'modify access number', 1,
        jsonb_build_object('access_number', p_number),
        jsonb_build_object('changes', kondge.changes(to_jsonb(v_old), to_jsonb(v_new))));
    RETURN NEXT v_new;
END;
$$;

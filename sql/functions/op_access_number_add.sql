-- An operator adds an access number with its policy (kondge_billing/
-- callers.py: add_access_number): which logins it takes, its prompt
-- language and prompt id. One audit record with the policy.
CREATE OR REPLACE FUNCTION kondge.op_access_number_add(
    p_operator text, p_number text, p_description text, p_login text, p_language text,
    p_prompt_id integer
) RETURNS SETOF kondge.access_number
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_row kondge.access_number%ROWTYPE;
BEGIN
    INSERT INTO kondge.access_number (number, description, login, language, prompt_id)
    VALUES (p_number, coalesce(p_description, ''), coalesce(p_login, 'both'), p_language,
            p_prompt_id)
    ON CONFLICT (number) DO NOTHING RETURNING * INTO v_row;
    IF v_row.number IS NULL THEN
        RAISE EXCEPTION 'access number % exists already; use modify', p_number
              USING ERRCODE = 'unique_violation';
    END IF;
    PERFORM kondge.audit_record(p_operator, 'add access number', 1,
                                jsonb_build_object('access_number', p_number),
                                to_jsonb(v_row) - 'number');
    RETURN NEXT v_row;
END;
$$;

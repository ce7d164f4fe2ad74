-- An operator unbinds caller numbers (kondge_billing/store/callers.py: unbind).
-- None of them bound is refused (nothing to do). One audit record with the
-- cards they were bound to. Returns how many were unbound.
CREATE OR REPLACE FUNCTION kondge.op_callers_unbind(p_operator text, p_numbers text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_gone jsonb;
    v_n    integer;
BEGIN
    WITH gone AS (
        DELETE FROM kondge.caller l WHERE l.number = ANY (p_numbers)
        RETURNING l.number, l.card_id)
    SELECT count(*), jsonb_object_agg(g.number, c.number) INTO v_n, v_gone
      FROM gone g JOIN kondge.card c ON c.id = g.card_id;
    IF v_n = 0 THEN
        RAISE EXCEPTION 'none of these numbers was bound' USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM kondge.audit_record(p_operator, 'unbind callers', v_n,
        jsonb_build_object('numbers', to_jsonb(p_numbers)), jsonb_build_object('cards', v_gone));
    RETURN v_n;
END;
$$;

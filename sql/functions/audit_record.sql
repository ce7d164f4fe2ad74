-- The writer of the audit log (kondge_billing/store/audit.py reads it): one
-- record of who (p_operator, the person the command named; the database
-- role is stamped by audit_log_stamped), what (p_action, with the cards it
-- selected and the details) and how many (p_count). Called by the
-- operators' functions (op_*.sql) and the audit triggers, in the
-- transaction of the change, so that a change is never without its record.
-- Nulls are left out of selection and details.
CREATE OR REPLACE FUNCTION kondge.audit_record(
    p_operator text, p_action text, p_count bigint, p_selection jsonb, p_details jsonb
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_operator IS NULL OR p_operator !~ '^[^[:cntrl:]]{1,64}$' OR btrim(p_operator) = '' THEN
        RAISE EXCEPTION 'operator: 1 to 64 printable characters naming who does it, not %',
                        coalesce(quote_literal(left(p_operator, 70)), 'none')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO kondge.audit_log (operator, action, selection, details, count)
    VALUES (p_operator, p_action, jsonb_strip_nulls(coalesce(p_selection, '{}')),
            jsonb_strip_nulls(coalesce(p_details, '{}')), p_count)
    RETURNING id INTO v_id;
    RETURN v_id;
END;
$$;

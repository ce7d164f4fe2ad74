-- What makes an operator's movement of money unique and why it was made:
-- an operation id (letters, digits, '_', '.', ':', '-', at most 64; the
-- ledger key holds it) and a reason of 1 to 200 printable characters.
-- Raises otherwise.
CREATE OR REPLACE FUNCTION kondge.checked_operation(p_operation_id text, p_reason text)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_operation_id IS NULL OR p_operation_id !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' THEN
        RAISE EXCEPTION '--operation-id: letters, digits, ''_'', ''.'', '':'', ''-'', at most 64'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_reason IS NULL OR p_reason !~ '^[^[:cntrl:]]{1,200}$' OR btrim(p_reason) = '' THEN
        RAISE EXCEPTION '--reason: 1 to 200 printable characters saying why'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
END;
$$;

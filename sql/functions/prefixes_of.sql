-- Every prefix of a number, longest first (at most 32 digits).
-- PL/pgSQL, not SQL: called from rating_context on every rating, a SQL
-- function body would be planned again each time.
CREATE OR REPLACE FUNCTION kondge.prefixes_of(p_number text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    v_result text[] := '{}';
BEGIN
    FOR n IN REVERSE least(length(p_number), 32) .. 1 LOOP
        v_result := v_result || left(p_number, n);
    END LOOP;
    RETURN v_result;
END;
$$;

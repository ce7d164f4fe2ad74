-- Keep an accounting record the hook could not process, whole: its pairs
-- (a JSON array of [name, value], as the hook got them) and the error.
-- Bounded, so that the call path's role cannot fill the database: at most
-- 64 KiB of pairs and 4,000 characters of error (the hook cuts its error
-- to that). Parked records move no money; `kondge accounting replay`
-- stores them through the call path's functions, as the hook would.
CREATE OR REPLACE FUNCTION kondge.radius_park(p_pairs jsonb, p_error text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public
SET enable_seqscan = off  -- by index: the call tables grow (docs/performance.md)
AS $$
BEGIN
    IF jsonb_typeof(p_pairs) IS DISTINCT FROM 'array' OR octet_length(p_pairs::text) > 65536
       OR p_error IS NULL OR length(p_error) > 4000 THEN
        RAISE EXCEPTION 'radius_park: a JSON array of pairs of at most 64 KiB and an error of '
                        'at most 4000 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO kondge.unprocessed_record (pairs, error) VALUES (p_pairs, p_error);
END;
$$;

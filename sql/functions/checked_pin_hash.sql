-- A PIN's keyed hash as kondge_billing/store/pins.py makes it (the key never
-- reaches the database): 'hmac-sha256$' and 64 hex digits. Raises otherwise.
CREATE OR REPLACE FUNCTION kondge.checked_pin_hash(p_hash text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_hash IS NULL OR length(p_hash) <> 76 OR p_hash !~ '^hmac-sha256\$[0-9a-f]+$' THEN
        RAISE EXCEPTION 'a PIN is stored as its keyed hash (hmac-sha256$ and 64 hex digits), '
                        'made by the kondge tool from the PIN'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_hash;
END;
$$;

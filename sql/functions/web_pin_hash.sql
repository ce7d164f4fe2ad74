-- The keyed hash of a PIN as kondge_billing/store/pins.py makes it (HMAC-SHA256
-- keyed by the PIN key, over "card number:PIN"), for web_login_caller,
-- which learns the card number only here, from the caller number. Built on
-- the core sha256() (RFC 2104), so no extension is needed. Not granted to
-- anyone.
CREATE OR REPLACE FUNCTION kondge.web_pin_hash(p_key text, p_number text, p_pin text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = kondge, public AS $$
DECLARE
    v_key   bytea := convert_to(p_key, 'UTF8');
    v_inner bytea;
    v_outer bytea;
BEGIN
    IF length(v_key) > 64 THEN
        v_key := sha256(v_key);
    END IF;
    v_key := v_key || decode(repeat('00', 64 - length(v_key)), 'hex');
    v_inner := v_key;
    v_outer := v_key;
    FOR i IN 0..63 LOOP
        v_inner := set_byte(v_inner, i, get_byte(v_key, i) # 54);     -- 0x36
        v_outer := set_byte(v_outer, i, get_byte(v_key, i) # 92);     -- 0x5c
    END LOOP;
    RETURN 'hmac-sha256$' || encode(
        sha256(v_outer || sha256(v_inner || convert_to(p_number || ':' || p_pin, 'UTF8'))),
        'hex');
END;
$$;

-- An operator gives a card a new PIN (kondge cards set-pin): the keyed
-- hash the tool made of it, never the PIN; the only way anyone but the
-- owner writes a PIN hash. One audit record (without the hash).
CREATE OR REPLACE FUNCTION kondge.op_set_pin(p_operator text, p_card text, p_pin_hash text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
BEGIN
    PERFORM kondge.checked_pin_hash(p_pin_hash);
    UPDATE kondge.card SET pin_hash = p_pin_hash WHERE number = p_card;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no card %', p_card USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM kondge.audit_record(p_operator, 'set pin', 1, jsonb_build_object('card', p_card),
                                '{}');
END;
$$;

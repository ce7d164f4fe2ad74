-- An operator binds caller numbers (international form, digits only) to a
-- card (kondge_billing/store/callers.py: bind, which reads them as the gateway
-- writes them first): a number bound to another card is refused, one
-- bound to this card already stays. One audit record, counting the
-- numbers bound now. Returns them.
CREATE OR REPLACE FUNCTION kondge.op_callers_bind(p_operator text, p_card text,
                                                  p_numbers text[])
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_card  bigint;
    v_taken text;
    v_bound text[];
BEGIN
    SELECT id INTO v_card FROM kondge.card WHERE number = p_card FOR UPDATE;
    IF v_card IS NULL THEN
        RAISE EXCEPTION 'no card %', p_card USING ERRCODE = 'no_data_found';
    END IF;
    IF coalesce(cardinality(p_numbers), 0) = 0 THEN
        RAISE EXCEPTION 'no caller number given' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(l.number || ' is bound to card ' || c.number, '; ') INTO v_taken
      FROM kondge.caller l JOIN kondge.card c ON c.id = l.card_id
     WHERE l.number = ANY (p_numbers) AND l.card_id <> v_card;
    IF v_taken IS NOT NULL THEN
        RAISE EXCEPTION '%; unbind it first', v_taken USING ERRCODE = 'unique_violation';
    END IF;
    WITH bound AS (
        INSERT INTO kondge.caller (number, card_id)
        SELECT DISTINCT n, v_card FROM unnest(p_numbers) n
        ON CONFLICT (number) DO NOTHING RETURNING number)
    SELECT coalesce(array_agg(number ORDER BY number), '{}') INTO v_bound FROM bound;
    PERFORM kondge.audit_record(p_operator, 'bind callers', cardinality(v_bound),
        jsonb_build_object('card', p_card, 'numbers', to_jsonb(p_numbers)), '{}');
    RETURN QUERY SELECT unnest(v_bound);
END;
$$;

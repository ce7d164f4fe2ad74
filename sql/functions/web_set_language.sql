-- The logged-in card holder chooses the card's language (its IVR prompts,
-- statements and the portal's pages): the operators' card change
-- (op_card_modify.sql, audited, naming 'web portal'). False when the
-- session is not valid.
CREATE OR REPLACE FUNCTION kondge.web_set_language(p_token text, p_language text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
DECLARE
    v_card_id bigint := kondge.web_session_card(p_token);
BEGIN
    IF v_card_id IS NULL THEN
        RETURN false;
    END IF;
    IF p_language IS NULL OR p_language !~ '^[a-z]{2,3}$' THEN
        RAISE EXCEPTION 'a language is 2 or 3 lower-case letters, not %',
                        coalesce(quote_literal(left(p_language, 10)), 'none')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM kondge.op_card_modify('web portal',
                                  (SELECT c.number FROM kondge.card c WHERE c.id = v_card_id),
                                  jsonb_build_object('language', p_language));
    RETURN true;
END;
$$;

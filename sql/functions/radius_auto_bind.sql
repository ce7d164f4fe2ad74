-- Bind a caller number to a card after a card login (category auto_bind):
-- only if the number is free and the card below its category's maximum.
CREATE OR REPLACE FUNCTION kondge.radius_auto_bind(p_card_id bigint, p_caller_number text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
BEGIN
    PERFORM 1 FROM kondge.card WHERE id = p_card_id FOR UPDATE;
    IF NOT (SELECT cat.auto_bind AND (SELECT count(*) FROM kondge.caller WHERE card_id = p_card_id)
                   < cat.max_callers
              FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
             WHERE c.id = p_card_id) THEN
        RETURN false;
    END IF;
    INSERT INTO kondge.caller (number, card_id, auto_bound) VALUES (p_caller_number, p_card_id, true)
    ON CONFLICT (number) DO NOTHING;
    RETURN FOUND;
END;
$$;

-- Bind a caller number to a card after a card login (category auto_bind):
-- only if the card was proven for this call (its login on this gateway
-- under this call id names it: radius_card writes that after the PIN
-- matched), the number is free and the card below its category's maximum.
CREATE OR REPLACE FUNCTION kondge.radius_auto_bind(
    p_card_id bigint, p_caller_number text, p_gateway_id integer, p_call_id text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public
SET enable_seqscan = off  -- by index: the call tables grow (docs/performance.md)
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM kondge.call_login l
                    WHERE l.gateway_id = p_gateway_id AND l.call_id = p_call_id
                      AND l.card_id = p_card_id) THEN
        RETURN false;
    END IF;
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

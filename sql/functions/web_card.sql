-- The logged-in card (kondge_billing/store/portal.py: card): what the portal's
-- summary shows. No row when the session is not valid. `held` is what its
-- calls up and their holds take (card_holds.sql), `available` what a new
-- call may spend (balance, plus the credit limit of a postpaid card, less
-- the holds), as the call path counts it.
CREATE OR REPLACE FUNCTION kondge.web_card(p_token text)
RETURNS TABLE (number text, balance numeric, held numeric, available numeric,
               currency text, status text, expires_at timestamptz, first_used_at timestamptz,
               language text, category text, billing text, credit_limit numeric,
               callers text[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
#variable_conflict use_column
DECLARE
    v_card_id bigint := kondge.web_session_card(p_token);
    v_holds   record;
BEGIN
    IF v_card_id IS NULL THEN
        RETURN;
    END IF;
    v_holds := kondge.card_holds(v_card_id, -1, '');
    RETURN QUERY
    SELECT c.number, c.balance, v_holds.held,
           c.balance + CASE WHEN cat.billing = 'postpaid' THEN cat.credit_limit ELSE 0 END
                     - v_holds.held,
           c.currency::text, c.status, c.expires_at, c.first_used_at, c.language, c.category,
           cat.billing, cat.credit_limit,
           ARRAY(SELECT b.number FROM kondge.caller b WHERE b.card_id = c.id ORDER BY b.number)
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
     WHERE c.id = v_card_id;
END;
$$;

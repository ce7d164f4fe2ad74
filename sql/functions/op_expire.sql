-- The value left on expired cards leaves them through the ledger
-- (kondge_billing/store/cards.py: expire, run daily): one 'expiry' entry per card
-- and expiry date, so running it again changes nothing. p_as_of (default
-- now) may not lie ahead: nobody empties a card before it expires. One
-- audit record with the count and the value per currency. Returns the
-- cards emptied now.
CREATE OR REPLACE FUNCTION kondge.op_expire(p_operator text, p_as_of timestamptz)
RETURNS TABLE (card_id bigint, expired numeric, currency text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_as_of   timestamptz := coalesce(p_as_of, now());
    v_cards   bigint[];
    v_amounts numeric[];
    v_keys    text[];
    v_value   jsonb;
BEGIN
    IF v_as_of > now() THEN
        RAISE EXCEPTION 'expire: % lies ahead; cards are emptied once they have expired', v_as_of
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}'),
           coalesce(array_agg(-c.balance ORDER BY c.id), '{}'),
           coalesce(array_agg('expiry:' || c.id || ':' || extract(epoch FROM c.expires_at)::bigint
                              ORDER BY c.id), '{}')
      INTO v_cards, v_amounts, v_keys
      FROM (SELECT x.id, x.balance, x.expires_at FROM kondge.card x
             WHERE x.expires_at <= v_as_of AND x.balance > 0 ORDER BY x.id FOR UPDATE) c;
    SELECT coalesce(array_agg(p.card_id ORDER BY p.card_id), '{}'),
           coalesce(array_agg(-p.amount ORDER BY p.card_id), '{}')
      INTO v_cards, v_amounts
      FROM kondge.post_ledger(v_cards, v_amounts, 'expiry', v_keys,
                              'value expired with the card') p;
    SELECT coalesce(jsonb_object_agg(t.currency, t.total::text), '{}') INTO v_value
      FROM (SELECT c.currency, sum(e.expired) AS total
              FROM unnest(v_cards, v_amounts) AS e(id, expired)
              JOIN kondge.card c ON c.id = e.id GROUP BY 1) t;
    PERFORM kondge.audit_record(p_operator, 'expire', cardinality(v_cards),
        jsonb_build_object('expired_by', v_as_of), jsonb_build_object('value', v_value));
    RETURN QUERY SELECT e.id, e.expired, c.currency::text
                   FROM unnest(v_cards, v_amounts) AS e(id, expired)
                   JOIN kondge.card c ON c.id = e.id ORDER BY e.id;
END;
$$;

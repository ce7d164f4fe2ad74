-- The logged-in card's refills and other movements (everything on its
-- ledger but call charges; kondge_billing/store/portal.py: movements), newest
-- first, a page of at most p_limit (1 to 1,000) from p_offset; `total`
-- counts them all. No row when the session is not valid.
CREATE OR REPLACE FUNCTION kondge.web_movements(p_token text, p_limit integer,
                                                p_offset integer)
RETURNS TABLE (created_at timestamptz, kind text, amount numeric, balance_after numeric,
               note text, total bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = kondge, public AS $$
    WITH session AS MATERIALIZED (SELECT kondge.web_session_card(p_token) AS card_id)
    SELECT l.created_at, l.kind, l.amount, l.balance_after, l.note, count(*) OVER ()
      FROM session s JOIN kondge.ledger_entry l ON l.card_id = s.card_id
     WHERE l.kind <> 'call'
     ORDER BY l.id DESC
     LIMIT least(greatest(coalesce(p_limit, 20), 1), 1000)
    OFFSET greatest(coalesce(p_offset, 0), 0);
$$;

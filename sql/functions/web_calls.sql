-- The logged-in card's calls (kondge_billing/store/portal.py: calls), newest
-- first, those that started in [p_since, p_until) (NULL: no bound), a page
-- of at most p_limit (1 to 10,000) from p_offset; `total` counts every
-- call the bounds take. The destination's name is the one of the tariff
-- version that priced the call. No row when the session is not valid.
CREATE OR REPLACE FUNCTION kondge.web_calls(p_token text, p_since timestamptz,
                                            p_until timestamptz, p_limit integer,
                                            p_offset integer)
RETURNS TABLE (started_at timestamptz, destination text, destination_name text,
               seconds integer, charge numeric, currency text, total bigint)
LANGUAGE sql SECURITY DEFINER SET search_path = kondge, public AS $$
    WITH session AS MATERIALIZED (SELECT kondge.web_session_card(p_token) AS card_id)
    SELECT coalesce(d.connect_time, d.created_at), d.destination, td.name, d.duration,
           d.charge, d.currency::text, count(*) OVER ()
      FROM session s
      JOIN kondge.cdr d ON d.card_id = s.card_id
      LEFT JOIN kondge.tariff_destination td ON td.id = d.destination_id
     WHERE (p_since IS NULL OR coalesce(d.connect_time, d.created_at) >= p_since)
       AND (p_until IS NULL OR coalesce(d.connect_time, d.created_at) < p_until)
     ORDER BY coalesce(d.connect_time, d.created_at) DESC, d.id DESC
     LIMIT least(greatest(coalesce(p_limit, 50), 1), 10000)
    OFFSET greatest(coalesce(p_offset, 0), 0);
$$;

-- The logged-in card's statement for [p_start, p_end) (kondge_billing/
-- portal.py: statement; drawn by statements.py as the operators' is): the
-- card, the sums of its ledger before and in the period, its calls charged
-- in the period and its other movements, as JSON (money as strings). NULL
-- when the session is not valid.
CREATE OR REPLACE FUNCTION kondge.web_statement(p_token text, p_start timestamptz,
                                                p_end timestamptz)
RETURNS jsonb
LANGUAGE sql SECURITY DEFINER SET search_path = kondge, public AS $$
    WITH session AS MATERIALIZED (SELECT kondge.web_session_card(p_token) AS v_card_id)
    SELECT jsonb_build_object(
        'card', (SELECT jsonb_build_object(
                            'id', c.id, 'number', c.number, 'currency', c.currency,
                            'category', c.category, 'status', c.status,
                            'balance', c.balance::text, 'expires_at', c.expires_at,
                            'language', c.language, 'billing', cat.billing,
                            'credit_limit', cat.credit_limit::text)
                   FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
                  WHERE c.id = v_card_id),
        'opening', (SELECT coalesce(sum(l.amount), 0)::text FROM kondge.ledger_entry l
                     WHERE l.card_id = v_card_id AND l.created_at < p_start),
        'movement', (SELECT coalesce(sum(l.amount), 0)::text FROM kondge.ledger_entry l
                      WHERE l.card_id = v_card_id AND l.created_at >= p_start
                        AND l.created_at < p_end),
        'calls', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                      'connect_time', d.connect_time,
                                      'created_at', d.created_at,
                                      'destination', d.destination, 'duration', d.duration,
                                      'charge', d.charge::text,
                                      'uncollected', d.uncollected::text)
                                  ORDER BY d.created_at, d.id)
                             FROM kondge.cdr d
                            WHERE d.card_id = v_card_id AND d.created_at >= p_start
                              AND d.created_at < p_end), '[]'),
        'movements', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                          'created_at', l.created_at, 'kind', l.kind,
                                          'amount', l.amount::text, 'note', l.note)
                                      ORDER BY l.id)
                                 FROM kondge.ledger_entry l
                                WHERE l.card_id = v_card_id AND l.kind <> 'call'
                                  AND l.created_at >= p_start AND l.created_at < p_end),
                              '[]'))
      FROM session WHERE v_card_id IS NOT NULL;
$$;

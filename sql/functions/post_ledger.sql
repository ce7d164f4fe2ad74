-- The one writer of money: ledger entries and the cards' balances, together,
-- for one card or many at once (an issue of 100,000 cards, a batch top-up,
-- the expiry run). Each movement is (card, amount, key); the key makes it
-- unique: posting a key again moves nothing. Returns the movements posted,
-- each with its card's balance after it. The cards are locked (FOR UPDATE,
-- in id order, so that two postings cannot deadlock) until the caller's
-- transaction ends. A card may appear once in one posting.
CREATE OR REPLACE FUNCTION kondge.post_ledger(
    p_cards bigint[], p_amounts numeric[], p_kind text, p_keys text[], p_note text DEFAULT ''
) RETURNS TABLE (card_id bigint, amount numeric, balance_after numeric)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_after numeric;           -- one card's balance after its movement
BEGIN
    IF cardinality(p_cards) IS DISTINCT FROM cardinality(p_amounts)
       OR cardinality(p_cards) IS DISTINCT FROM cardinality(p_keys)
       OR array_position(p_amounts, NULL) IS NOT NULL
       OR array_position(p_keys, NULL) IS NOT NULL
       OR array_position(p_cards, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'post_ledger: one card, one amount and one key for each movement'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(p_cards) = 1 THEN
        -- one card (a call, a refill, an adjustment): the same, in plain statements
        SELECT c.balance + p_amounts[1] INTO v_after
          FROM kondge.card c WHERE c.id = p_cards[1] FOR UPDATE;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        INSERT INTO kondge.ledger_entry AS l (card_id, amount, kind, key, balance_after, note)
        VALUES (p_cards[1], p_amounts[1], p_kind, p_keys[1], v_after, coalesce(p_note, ''))
        ON CONFLICT (key) DO NOTHING;
        IF FOUND THEN
            UPDATE kondge.card c SET balance = v_after WHERE c.id = p_cards[1];
            RETURN QUERY SELECT p_cards[1], p_amounts[1], v_after;
        END IF;
        RETURN;
    END IF;
    IF (SELECT count(DISTINCT c) FROM unnest(p_cards) c) <> cardinality(p_cards) THEN
        RAISE EXCEPTION 'post_ledger: a card appears twice in one posting'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM 1 FROM kondge.card c WHERE c.id = ANY (p_cards) ORDER BY c.id FOR UPDATE;
    RETURN QUERY
    WITH movement AS (
        SELECT m.card_id, m.amount, m.key FROM unnest(p_cards, p_amounts, p_keys)
            AS m(card_id, amount, key)),
    posted AS (
        INSERT INTO kondge.ledger_entry AS l (card_id, amount, kind, key, balance_after, note)
        SELECT m.card_id, m.amount, p_kind, m.key, c.balance + m.amount, coalesce(p_note, '')
          FROM movement m JOIN kondge.card c ON c.id = m.card_id
        ON CONFLICT (key) DO NOTHING
        RETURNING l.card_id, l.amount, l.balance_after),
    moved AS (
        UPDATE kondge.card c SET balance = p.balance_after
          FROM posted p WHERE c.id = p.card_id
        RETURNING c.id)
    SELECT p.card_id, p.amount, p.balance_after FROM posted p;
END;
$$;

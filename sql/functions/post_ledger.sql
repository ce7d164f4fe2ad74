-- The one writer of money: ledger entries and the cards' balances, together,
-- for one card or many at once (an issue of 100,000 cards, a batch top-up,
-- the expiry run). Each movement is (card, amount, key); the key makes it
-- unique: posting a key again moves nothing. Returns the movements posted,
-- each with its card's balance after it. The cards are locked (FOR UPDATE,
-- in id order, so that two postings cannot deadlock) until the caller's
-- transaction ends. A card may appear once in one posting.
--
-- p_first_used_at, p_expires_at (one card only: a call's charge): the card's
-- first answered call starts its validity clock in the same UPDATE as its
-- new balance, if it had not started: first_used_at, and expires_at when
-- p_expires_at is given (an after-first-use card). One UPDATE, not two: a
-- row updated a second time in its transaction has its foreign keys checked
-- again (the card's category and tariff rows locked, the hottest rows
-- there are), and leaves one more row version.
CREATE OR REPLACE FUNCTION kondge.post_ledger(
    p_cards bigint[], p_amounts numeric[], p_kind text, p_keys text[], p_note text DEFAULT '',
    p_first_used_at timestamptz DEFAULT NULL, p_expires_at timestamptz DEFAULT NULL
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
    IF (p_first_used_at IS NOT NULL OR p_expires_at IS NOT NULL) AND cardinality(p_cards) <> 1 THEN
        RAISE EXCEPTION 'post_ledger: a first use is posted with one card only'
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
            UPDATE kondge.card c
               SET balance = v_after,
                   first_used_at = coalesce(c.first_used_at, p_first_used_at),
                   expires_at = CASE WHEN c.first_used_at IS NULL AND p_first_used_at IS NOT NULL
                                          AND p_expires_at IS NOT NULL
                                     THEN p_expires_at ELSE c.expires_at END
             WHERE c.id = p_cards[1];
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

-- The one writer of money: a ledger entry and the card's balance, together.
-- p_key makes the movement unique: posting a key again moves nothing and
-- returns NULL. Returns the balance after the movement. The card row is
-- locked (FOR UPDATE) until the caller's transaction ends.
CREATE OR REPLACE FUNCTION kondge.post_ledger(
    p_card_id bigint, p_amount numeric, p_kind text, p_key text, p_note text DEFAULT ''
) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    v_balance numeric;
BEGIN
    IF p_amount IS NULL OR p_key IS NULL THEN
        RAISE EXCEPTION 'post_ledger: an amount and a key are needed'
              USING ERRCODE = 'not_null_violation';
    END IF;
    SELECT balance INTO v_balance FROM kondge.card WHERE id = p_card_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'post_ledger: no card %', p_card_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    INSERT INTO kondge.ledger_entry (card_id, amount, kind, key, balance_after, note)
    VALUES (p_card_id, p_amount, p_kind, p_key, v_balance + p_amount, coalesce(p_note, ''))
    ON CONFLICT (key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE kondge.card SET balance = v_balance + p_amount WHERE id = p_card_id;
    RETURN v_balance + p_amount;
END;
$$;

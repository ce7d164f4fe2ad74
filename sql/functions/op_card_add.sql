-- An operator adds one card (kondge_billing/store/cards.py: add, which reports
-- every problem of the card at once before it calls this). The card is in
-- its category's currency, in a calling-card category; its PIN arrives as
-- its keyed hash; its opening balance is its first ledger entry; the
-- audit record names the operator. Returns the card's id.
CREATE OR REPLACE FUNCTION kondge.op_card_add(
    p_operator text, p_number text, p_pin_hash text, p_balance numeric, p_currency text,
    p_category text, p_language text, p_expires timestamptz, p_tariff text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_category kondge.category%ROWTYPE;
    v_id       bigint;
BEGIN
    PERFORM kondge.checked_amount('balance', p_balance, false);
    PERFORM kondge.checked_pin_hash(p_pin_hash);
    SELECT * INTO v_category FROM kondge.category WHERE name = p_category FOR SHARE;
    IF v_category.name IS NULL OR v_category.kind <> 'card'
       OR v_category.currency IS DISTINCT FROM p_currency THEN
        RAISE EXCEPTION 'category: % is no calling-card category in %', p_category, p_currency
              USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM kondge.card WHERE number = p_number)
       OR EXISTS (SELECT 1 FROM kondge.voucher WHERE number = p_number) THEN
        RAISE EXCEPTION 'card % exists already', p_number USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO kondge.card (number, pin_hash, currency, category, language, expires_at,
                             tariff_id)
    VALUES (p_number, p_pin_hash, p_currency, p_category, coalesce(p_language, 'en'),
            p_expires, kondge.tariff_in(p_tariff, p_currency, 'card ' || p_number))
    RETURNING id INTO v_id;
    PERFORM kondge.post_ledger(ARRAY[v_id], ARRAY[p_balance], 'issue',
                               ARRAY['issue:' || p_number], 'card issued');
    PERFORM kondge.audit_record(p_operator, 'add card', 1,
        jsonb_build_object('numbers', jsonb_build_array(p_number)),
        jsonb_build_object('balance', p_balance::text, 'currency', p_currency,
                           'category', p_category, 'tariff', p_tariff,
                           'expires_at', p_expires, 'language', p_language));
    RETURN v_id;
END;
$$;

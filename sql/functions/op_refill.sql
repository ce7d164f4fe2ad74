-- An operator moves a recharge voucher's value to a calling card
-- (kondge_billing/store/vouchers.py: refill, which words the outcome). The
-- voucher is locked first, the card second: of two refills of one voucher
-- at once, the second waits and finds it used; the ledger key
-- 'voucher:NUMBER' credits a card at most once even so. The PIN arrives as
-- its keyed hash and is compared here: nobody reads a voucher's hash.
--
-- Outcomes: 'refilled' (with the amount and the card's balance); refusals
-- that change nothing: 'no-voucher' (unknown, or a wrong PIN on a voucher
-- that is not active), 'used', 'inactive', 'suspended', 'cancelled',
-- 'expired', 'no-card', 'card-cancelled', 'currency' (the voucher and the
-- card differ); and 'wrong-pin', which counts the wrong PIN (the caller
-- commits it, then refuses): after five in a row the voucher is suspended,
-- with an audit record. A refusal leaves no other audit record.
CREATE OR REPLACE FUNCTION kondge.op_refill(p_operator text, p_card text, p_voucher text,
                                            p_pin_hash text)
RETURNS TABLE (outcome text, amount numeric, currency text, balance numeric,
               failed_attempts integer, used_at timestamptz, expires_at timestamptz,
               card_currency text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_voucher  kondge.voucher%ROWTYPE;
    v_card     record;
    v_tries    integer;
    v_balance  numeric;
BEGIN
    SELECT * INTO v_voucher FROM kondge.voucher v WHERE v.number = p_voucher FOR UPDATE;
    IF v_voucher.id IS NOT NULL AND v_voucher.status = 'active'
       AND v_voucher.pin_hash IS DISTINCT FROM p_pin_hash THEN
        v_tries := v_voucher.failed_attempts + 1;
        UPDATE kondge.voucher v
           SET failed_attempts = v_tries,
               status = CASE WHEN v_tries >= 5 THEN 'suspended' ELSE v.status END
         WHERE v.id = v_voucher.id;
        IF v_tries >= 5 THEN
            PERFORM kondge.audit_record(p_operator, 'suspend', 1,
                jsonb_build_object('voucher', p_voucher),
                jsonb_build_object('reason', v_tries || ' wrong PINs'));
        END IF;
        RETURN QUERY SELECT 'wrong-pin'::text, NULL::numeric, NULL::text, NULL::numeric,
                            v_tries, NULL::timestamptz, NULL::timestamptz, NULL::text;
        RETURN;
    END IF;
    IF v_voucher.id IS NULL OR v_voucher.pin_hash IS DISTINCT FROM p_pin_hash
       OR v_voucher.status <> 'active'
       OR v_voucher.expires_at <= now() THEN
        RETURN QUERY SELECT CASE WHEN v_voucher.id IS NULL
                                   OR v_voucher.pin_hash IS DISTINCT FROM p_pin_hash
                                 THEN 'no-voucher'
                                 WHEN v_voucher.status <> 'active' THEN v_voucher.status
                                 ELSE 'expired' END,
                            NULL::numeric, v_voucher.currency::text, NULL::numeric, NULL::integer,
                            v_voucher.used_at, v_voucher.expires_at, NULL::text;
        RETURN;
    END IF;
    SELECT c.id, c.status, c.currency::text AS currency INTO v_card
      FROM kondge.card c WHERE c.number = p_card FOR UPDATE;
    IF v_card.id IS NULL OR v_card.status = 'cancelled'
       OR v_card.currency <> v_voucher.currency THEN
        RETURN QUERY SELECT CASE WHEN v_card.id IS NULL THEN 'no-card'
                                 WHEN v_card.status = 'cancelled' THEN 'card-cancelled'
                                 ELSE 'currency' END,
                            NULL::numeric, v_voucher.currency::text, NULL::numeric,
                            NULL::integer, NULL::timestamptz, NULL::timestamptz, v_card.currency;
        RETURN;
    END IF;
    SELECT l.balance_after INTO v_balance
      FROM kondge.post_ledger(ARRAY[v_card.id], ARRAY[v_voucher.value], 'refill',
                              ARRAY['voucher:' || p_voucher],
                              'voucher ' || p_voucher || ' serial ' || v_voucher.serial) l;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'used'::text, NULL::numeric, v_voucher.currency::text,
                            NULL::numeric, NULL::integer, NULL::timestamptz, NULL::timestamptz,
                            NULL::text;
        RETURN;
    END IF;
    UPDATE kondge.voucher v SET status = 'used', used_at = now(), used_by = v_card.id,
                                failed_attempts = 0
     WHERE v.id = v_voucher.id;
    PERFORM kondge.audit_record(p_operator, 'refill', 1,
        jsonb_build_object('card', p_card, 'voucher', p_voucher),
        jsonb_build_object('amount', v_voucher.value::text, 'currency', v_voucher.currency));
    RETURN QUERY SELECT 'refilled'::text, v_voucher.value, v_voucher.currency::text, v_balance,
                        0, now(), v_voucher.expires_at, v_card.currency;
END;
$$;

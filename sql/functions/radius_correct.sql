-- The real Stop of a call the sweep closed (its Stop was late, not lost):
-- the CDR takes the real talk time, cost and charge, the difference is an
-- 'adjustment' ledger entry keyed by the call (so it happens once), and
-- the CDR is flagged 'corrected'. The charge is capped as radius_settle
-- caps it, with this call's first charge given back.
CREATE OR REPLACE FUNCTION kondge.radius_correct(
    p_cdr_id bigint, p_leg text, p_acct_session_id text, p_disconnect timestamptz,
    p_session_time integer, p_duration integer, p_cause text, p_digest text, p_cost numeric,
    p_flags text[]
) RETURNS TABLE (outcome text, charge numeric, balance numeric, cdr_id bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public
SET enable_seqscan = off  -- by index: the call tables grow (docs/performance.md)
AS $$
#variable_conflict use_column
DECLARE
    v_cdr    kondge.cdr%ROWTYPE;
    v_card   record;
    v_holds  record;
    v_room   numeric;
    v_charge numeric;
    v_delta  numeric;
    v_after  numeric;
BEGIN
    IF coalesce(p_cost, 0) < 0 THEN
        RAISE EXCEPTION 'radius_correct: cost % must not be negative', p_cost
              USING ERRCODE = 'check_violation';
    END IF;
    SELECT * INTO v_cdr FROM kondge.cdr WHERE id = p_cdr_id FOR UPDATE;
    IF v_cdr.id IS NULL OR NOT 'stop-missing' = ANY (v_cdr.flags)
       OR 'corrected' = ANY (v_cdr.flags) THEN
        RETURN QUERY SELECT 'duplicate'::text, NULL::numeric, NULL::numeric, v_cdr.id;
        RETURN;
    END IF;
    v_charge := 0;
    v_after := NULL;
    IF v_cdr.card_id IS NOT NULL THEN
        SELECT c.id, c.balance, cat.billing, cat.credit_limit INTO v_card
          FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
         WHERE c.id = v_cdr.card_id FOR UPDATE OF c;
        v_holds := kondge.card_holds(v_card.id, NULL, NULL);
        v_room := v_card.balance + v_cdr.charge - v_holds.held
                  + CASE WHEN v_card.billing = 'postpaid' THEN v_card.credit_limit ELSE 0 END;
        v_charge := least(coalesce(p_cost, 0), greatest(v_room, 0));
        v_delta := v_charge - v_cdr.charge;
        v_after := v_card.balance;
        IF v_delta <> 0 THEN
            SELECT l.balance_after INTO v_after
              FROM kondge.post_ledger(ARRAY[v_card.id], ARRAY[-v_delta], 'adjustment',
                                      ARRAY['correction:' || v_cdr.gateway_id || ':'
                                            || v_cdr.call_key],
                                      'late Stop of cdr ' || v_cdr.id) l;
        END IF;
    END IF;
    UPDATE kondge.cdr
       SET duration = coalesce(p_duration, 0), session_time = p_session_time,
           disconnect_time = p_disconnect, disconnect_cause = p_cause,
           cost = coalesce(p_cost, 0), charge = v_charge,
           uncollected = coalesce(p_cost, 0) - v_charge,
           flags = flags || coalesce(p_flags, '{}') || ARRAY['corrected']
     WHERE id = v_cdr.id;
    UPDATE kondge.call_leg
       SET session_time = p_session_time, disconnect_time = p_disconnect,
           disconnect_cause = p_cause, stop_digest = p_digest,
           stop_received_at = coalesce(stop_received_at, now()),
           flags = flags || ARRAY['corrected']
     WHERE gateway_id = v_cdr.gateway_id AND call_key = v_cdr.call_key AND leg = p_leg
       AND acct_session_id = coalesce(p_acct_session_id, '');
    RETURN QUERY SELECT 'corrected'::text, v_charge, v_after, v_cdr.id;
END;
$$;

-- An operator corrects one card's balance (kondge cards adjust): an
-- 'adjustment' of either sign, or a 'refund' (a credit), with a reason,
-- as one ledger entry keyed by the operation id, so the same command again
-- moves nothing. The amount is in the card's currency; a debit may not
-- take from the card what it does not have (its balance less what its live
-- calls hold, plus a postpaid card's credit limit). One audit record.
-- Returns the amount posted now (NULL: posted before) and the balance.
CREATE OR REPLACE FUNCTION kondge.op_adjust(
    p_operator text, p_card text, p_amount numeric, p_currency text, p_kind text,
    p_reason text, p_operation_id text
) RETURNS TABLE (posted numeric, balance numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_card   record;
    v_posted record;
    v_available numeric;
BEGIN
    IF p_kind NOT IN ('adjustment', 'refund') THEN
        RAISE EXCEPTION 'a correction is an adjustment or a refund, not %', p_kind
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM kondge.checked_amount('--amount', p_amount,
                                  CASE WHEN p_kind = 'refund' THEN true END);
    PERFORM kondge.checked_operation(p_operation_id, p_reason);
    SELECT c.id, c.balance, c.currency::text AS currency, cat.billing, cat.credit_limit
      INTO v_card
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
     WHERE c.number = p_card FOR UPDATE OF c;
    IF v_card.id IS NULL THEN
        RAISE EXCEPTION 'no card %', p_card USING ERRCODE = 'no_data_found';
    END IF;
    IF v_card.currency IS DISTINCT FROM p_currency THEN
        RAISE EXCEPTION 'card % is in %, the amount in %', p_card, v_card.currency, p_currency
              USING ERRCODE = 'check_violation';
    END IF;
    v_available := v_card.balance - (kondge.card_holds(v_card.id, NULL, NULL)).held
                   + CASE WHEN v_card.billing = 'postpaid' THEN v_card.credit_limit ELSE 0 END;
    IF p_amount < 0 AND v_available + p_amount < 0 THEN
        RAISE EXCEPTION 'card % has % % available: a debit of % would take more than it has',
                        p_card, v_available, p_currency, -p_amount
              USING ERRCODE = 'check_violation';
    END IF;
    SELECT l.amount, l.balance_after INTO v_posted
      FROM kondge.post_ledger(ARRAY[v_card.id], ARRAY[p_amount], p_kind,
                              ARRAY['adjust:' || p_operation_id || ':' || v_card.id],
                              p_reason || ' (by ' || p_operator || ')') l;
    PERFORM kondge.audit_record(p_operator, CASE p_kind WHEN 'refund' THEN 'refund'
                                                         ELSE 'adjust' END,
        CASE WHEN v_posted.amount IS NULL THEN 0 ELSE 1 END,
        jsonb_build_object('card', p_card),
        jsonb_build_object('amount', p_amount::text, 'currency', p_currency,
                           'reason', p_reason, 'operation_id', p_operation_id,
                           'balance', coalesce(v_posted.balance_after, v_card.balance)::text));
    RETURN QUERY SELECT v_posted.amount, coalesce(v_posted.balance_after, v_card.balance);
END;
$$;

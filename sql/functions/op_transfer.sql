-- An operator moves balance from one card to another of the same currency
-- (kondge cards transfer: a lost card's value onto its replacement): two
-- 'adjustment' ledger entries keyed by the operation id, so the same
-- command again moves nothing. p_amount NULL moves all that the first card
-- has available (its balance less what its live calls hold); a card never
-- gives more than that, and a postpaid card never gives its credit. Both
-- cards are locked in id order. One audit record. Returns the amount moved
-- now (NULL: moved before) and both balances.
CREATE OR REPLACE FUNCTION kondge.op_transfer(
    p_operator text, p_from text, p_to text, p_amount numeric, p_currency text,
    p_reason text, p_operation_id text
) RETURNS TABLE (moved numeric, from_balance numeric, to_balance numeric)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_from      record;
    v_to        record;
    v_available numeric;
    v_amount    numeric;
    v_moved     numeric;
    v_before    numeric;
BEGIN
    PERFORM kondge.checked_operation(p_operation_id, p_reason);
    IF p_amount IS NOT NULL THEN
        PERFORM kondge.checked_amount('--amount', p_amount, true);
    END IF;
    PERFORM 1 FROM kondge.card c WHERE c.number IN (p_from, p_to) ORDER BY c.id FOR UPDATE;
    SELECT c.id, c.balance, c.currency::text AS currency, c.status INTO v_from
      FROM kondge.card c WHERE c.number = p_from;
    SELECT c.id, c.balance, c.currency::text AS currency, c.status INTO v_to
      FROM kondge.card c WHERE c.number = p_to;
    IF v_from.id IS NULL OR v_to.id IS NULL OR v_from.id = v_to.id THEN
        RAISE EXCEPTION 'a transfer needs two cards: % and % (see kondge cards show)',
                        p_from, p_to USING ERRCODE = 'no_data_found';
    END IF;
    IF v_from.currency IS DISTINCT FROM p_currency OR v_to.currency IS DISTINCT FROM p_currency
    THEN
        RAISE EXCEPTION 'card % is in %, card % in %: a transfer in % needs both in %', p_from,
                        v_from.currency, p_to, v_to.currency, p_currency, p_currency
              USING ERRCODE = 'check_violation';
    END IF;
    IF v_to.status = 'cancelled' THEN
        RAISE EXCEPTION 'card % is cancelled', p_to USING ERRCODE = 'check_violation';
    END IF;
    v_available := greatest(v_from.balance - (kondge.card_holds(v_from.id, NULL, NULL)).held, 0);
    -- the same operation again: what it moved then (and nothing now)
    SELECT -l.amount INTO v_before FROM kondge.ledger_entry l
     WHERE l.key = 'transfer:' || p_operation_id || ':from';
    v_amount := coalesce(v_before, p_amount, v_available);
    IF v_before IS NULL AND (v_amount > v_available OR v_amount <= 0) THEN
        RAISE EXCEPTION 'card % has % % available: it cannot give %', p_from, v_available,
                        p_currency, v_amount USING ERRCODE = 'check_violation';
    END IF;
    SELECT max(l.amount) INTO v_moved
      FROM kondge.post_ledger(ARRAY[v_from.id, v_to.id], ARRAY[-v_amount, v_amount],
                              'adjustment',
                              ARRAY['transfer:' || p_operation_id || ':from',
                                    'transfer:' || p_operation_id || ':to'],
                              'transfer ' || p_from || ' -> ' || p_to || ': ' || p_reason
                              || ' (by ' || p_operator || ')') l;
    PERFORM kondge.audit_record(p_operator, 'transfer', CASE WHEN v_moved IS NULL THEN 0 ELSE 2 END,
        jsonb_build_object('from', p_from, 'to', p_to),
        jsonb_build_object('amount', v_amount::text, 'currency', p_currency,
                           'reason', p_reason, 'operation_id', p_operation_id));
    RETURN QUERY SELECT v_moved, c1.balance, c2.balance
                   FROM kondge.card c1, kondge.card c2
                  WHERE c1.id = v_from.id AND c2.id = v_to.id;
END;
$$;

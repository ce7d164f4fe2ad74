-- An operator credits every card a selection names with p_amount, once per
-- operation id (kondge_billing/store/batches.py: top_up): one 'refill' ledger
-- entry per card keyed by the operation id, so the same command again (a
-- retry, a double click) credits nobody twice. Every selected card must be
-- a calling card in p_currency. One audit record, counting the cards
-- credited now.
CREATE OR REPLACE FUNCTION kondge.op_top_up(p_operator text, p_selection jsonb,
                                            p_amount numeric, p_currency text,
                                            p_operation_id text)
RETURNS TABLE (matched integer, changed integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_ids     bigint[];
    v_changed integer;
BEGIN
    IF coalesce(p_selection->>'kind', 'card') <> 'card' THEN
        RAISE EXCEPTION 'only calling cards are topped up' USING ERRCODE = 'check_violation';
    END IF;
    PERFORM kondge.checked_amount('--amount', p_amount, true);
    PERFORM kondge.checked_operation(p_operation_id, 'top-up');
    v_ids := ARRAY(SELECT kondge.selected(p_selection));
    IF EXISTS (SELECT 1 FROM kondge.card x WHERE x.id = ANY (v_ids)
                AND x.currency IS DISTINCT FROM p_currency) THEN
        RAISE EXCEPTION 'a top-up in % needs cards in % only', p_currency, p_currency
              USING ERRCODE = 'check_violation';
    END IF;
    SELECT count(*) INTO v_changed FROM kondge.post_ledger(
        v_ids, array_fill(p_amount, ARRAY[cardinality(v_ids)]), 'refill',
        ARRAY(SELECT 'topup:' || p_operation_id || ':' || u.id
               FROM unnest(v_ids) WITH ORDINALITY AS u(id, n) ORDER BY u.n),
        'top-up ' || p_operation_id || ' by ' || p_operator);
    PERFORM kondge.audit_record(p_operator, 'top-up', v_changed, p_selection,
        jsonb_build_object('amount', p_amount::text, 'currency', p_currency,
                           'operation_id', p_operation_id, 'matched', cardinality(v_ids),
                           'kind', 'card'));
    RETURN QUERY SELECT cardinality(v_ids), v_changed;
END;
$$;

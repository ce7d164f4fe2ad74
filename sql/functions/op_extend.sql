-- An operator extends the validity of the cards (or vouchers) a selection
-- names (kondge_billing/store/batches.py: extend): by p_days (those that expire)
-- or to p_until; never a cancelled one. One audit record.
CREATE OR REPLACE FUNCTION kondge.op_extend(p_operator text, p_selection jsonb,
                                            p_days integer, p_until timestamptz)
RETURNS TABLE (matched integer, changed integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_ids     bigint[];
    v_changed integer;
BEGIN
    IF (p_days IS NULL) = (p_until IS NULL) OR p_days NOT BETWEEN 1 AND 36500 THEN
        RAISE EXCEPTION 'extend: give --days N (1 to 36500) or --until DATE'
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_ids := ARRAY(SELECT kondge.selected(p_selection));
    IF p_selection->>'kind' = 'voucher' THEN
        UPDATE kondge.voucher x
           SET expires_at = coalesce(p_until, x.expires_at + make_interval(days => p_days))
         WHERE x.id = ANY (v_ids) AND x.status <> 'cancelled'
           AND (p_until IS NOT NULL OR x.expires_at IS NOT NULL);
    ELSE
        UPDATE kondge.card x
           SET expires_at = coalesce(p_until, x.expires_at + make_interval(days => p_days))
         WHERE x.id = ANY (v_ids) AND x.status <> 'cancelled'
           AND (p_until IS NOT NULL OR x.expires_at IS NOT NULL);
    END IF;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    PERFORM kondge.audit_record(p_operator, 'extend', v_changed, p_selection,
        jsonb_build_object('days', p_days, 'until', p_until, 'matched', cardinality(v_ids),
                           'kind', coalesce(p_selection->>'kind', 'card')));
    RETURN QUERY SELECT cardinality(v_ids), v_changed;
END;
$$;

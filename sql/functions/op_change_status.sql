-- An operator activates, suspends or cancels the cards (or vouchers) a
-- selection names (kondge.selected; kondge_billing/store/batches.py:
-- change_status). Each action changes only the statuses it may start
-- from: a cancelled card is never reactivated, a used voucher stays used.
-- One audit record, with how many changed of how many selected.
CREATE OR REPLACE FUNCTION kondge.op_change_status(p_operator text, p_action text,
                                                   p_selection jsonb)
RETURNS TABLE (matched integer, changed integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_ids     bigint[];
    v_starts  text[];
    v_new     text;
    v_changed integer;
BEGIN
    SELECT s.starts, s.new INTO v_starts, v_new
      FROM (VALUES ('activate', ARRAY['inactive', 'suspended'], 'active'),
                   ('suspend', ARRAY['inactive', 'active'], 'suspended'),
                   ('cancel', ARRAY['inactive', 'active', 'suspended'], 'cancelled'))
           AS s(action, starts, new)
     WHERE s.action = p_action;
    IF v_new IS NULL THEN
        RAISE EXCEPTION 'a status change is activate, suspend or cancel, not %', p_action
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_ids := ARRAY(SELECT kondge.selected(p_selection));
    IF p_selection->>'kind' = 'voucher' THEN
        UPDATE kondge.voucher x
           SET status = v_new,
               activated_at = CASE WHEN v_new = 'active' THEN coalesce(x.activated_at, now())
                                   ELSE x.activated_at END
         WHERE x.id = ANY (v_ids) AND x.status = ANY (v_starts);
    ELSE
        UPDATE kondge.card x
           SET status = v_new,
               activated_at = CASE WHEN v_new = 'active' THEN coalesce(x.activated_at, now())
                                   ELSE x.activated_at END
         WHERE x.id = ANY (v_ids) AND x.status = ANY (v_starts);
    END IF;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    PERFORM kondge.audit_record(p_operator, p_action, v_changed, p_selection,
        jsonb_build_object('matched', cardinality(v_ids),
                           'kind', coalesce(p_selection->>'kind', 'card')));
    RETURN QUERY SELECT cardinality(v_ids), v_changed;
END;
$$;

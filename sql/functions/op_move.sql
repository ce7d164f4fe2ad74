-- An operator moves the cards (or vouchers) a selection names into another
-- category (kondge_billing/store/batches.py: move, which says first which cards
-- could not move and why): only into a category of their kind and
-- currency and, for calling cards, their billing model; a refused move
-- moves nothing. The categories involved are locked FOR SHARE, so none
-- changes currency or billing meanwhile. One audit record.
CREATE OR REPLACE FUNCTION kondge.op_move(p_operator text, p_selection jsonb, p_category text)
RETURNS TABLE (matched integer, changed integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_kind    text := coalesce(p_selection->>'kind', 'card');
    v_target  kondge.category%ROWTYPE;
    v_ids     bigint[];
    v_changed integer;
BEGIN
    SELECT * INTO v_target FROM kondge.category WHERE name = p_category FOR SHARE;
    IF v_target.name IS NULL OR v_target.kind <> v_kind THEN
        RAISE EXCEPTION 'no % category %', v_kind, p_category
              USING ERRCODE = 'foreign_key_violation';
    END IF;
    v_ids := ARRAY(SELECT kondge.selected(p_selection));
    PERFORM 1 FROM kondge.category c
     WHERE c.name IN (SELECT x.category FROM kondge.card x WHERE x.id = ANY (v_ids)
                       AND v_kind = 'card'
                      UNION SELECT x.category FROM kondge.voucher x WHERE x.id = ANY (v_ids)
                       AND v_kind = 'voucher')
     ORDER BY c.name FOR SHARE;
    IF v_kind = 'card' AND EXISTS (
           SELECT 1 FROM kondge.card x JOIN kondge.category c ON c.name = x.category
            WHERE x.id = ANY (v_ids) AND x.category <> p_category
              AND (x.currency <> v_target.currency OR c.billing <> v_target.billing))
       OR v_kind = 'voucher' AND EXISTS (
           SELECT 1 FROM kondge.voucher x
            WHERE x.id = ANY (v_ids) AND x.category <> p_category
              AND x.currency <> v_target.currency) THEN
        RAISE EXCEPTION 'a selected % is in another currency or billing model than category %; '
                        'nothing was moved', v_kind, p_category USING ERRCODE = 'check_violation';
    END IF;
    IF v_kind = 'voucher' THEN
        UPDATE kondge.voucher x SET category = p_category
         WHERE x.id = ANY (v_ids) AND x.category <> p_category;
    ELSE
        UPDATE kondge.card x SET category = p_category
         WHERE x.id = ANY (v_ids) AND x.category <> p_category;
    END IF;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    PERFORM kondge.audit_record(p_operator, 'move', v_changed, p_selection,
        jsonb_build_object('to', p_category, 'matched', cardinality(v_ids), 'kind', v_kind));
    RETURN QUERY SELECT cardinality(v_ids), v_changed;
END;
$$;

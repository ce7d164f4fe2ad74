-- The cards (or vouchers, "kind": "voucher") an operator's batch change
-- selects (kondge_billing/store/batches.py: Selection), by id: every criterion
-- given must hold, at least one must be given. Each criterion is a fixed
-- fragment reading its value from the selection; no value is ever written
-- into the SQL text.
CREATE OR REPLACE FUNCTION kondge.selected(p_selection jsonb) RETURNS SETOF bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_sel      jsonb := jsonb_strip_nulls(coalesce(p_selection, '{}'));
    v_criteria CONSTANT jsonb := jsonb_build_object(
        'batch', 'x.batch_id = (SELECT b.id FROM kondge.batch b WHERE b.name = $1->>''batch'')',
        'serial_from', 'x.serial >= ($1->>''serial_from'')::bigint',
        'serial_to', 'x.serial <= ($1->>''serial_to'')::bigint',
        'number_from', '(length(x.number), x.number) >= '
                       '(length($1->>''number_from''), $1->>''number_from'')',
        'number_to', '(length(x.number), x.number) <= '
                     '(length($1->>''number_to''), $1->>''number_to'')',
        'numbers', 'x.number = ANY (ARRAY(SELECT jsonb_array_elements_text($1->''numbers'')))',
        'category', 'x.category = $1->>''category''',
        'status', 'x.status = $1->>''status''');
    v_table    text;
    v_where    text;
    v_unknown  text;
BEGIN
    v_table := CASE coalesce(v_sel->>'kind', 'card')
               WHEN 'card' THEN 'kondge.card' WHEN 'voucher' THEN 'kondge.voucher' END;
    SELECT string_agg(k, ', ') INTO v_unknown FROM jsonb_object_keys(v_sel) k
     WHERE NOT v_criteria ? k AND k <> 'kind';
    IF v_table IS NULL OR v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'a selection has kind card or voucher and the criteria %, not %',
                        (SELECT string_agg(k, ', ') FROM jsonb_object_keys(v_criteria) k),
                        coalesce(v_unknown, 'kind ' || (v_sel->>'kind'))
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(v_criteria->>k, ' AND ' ORDER BY k) INTO v_where
      FROM jsonb_object_keys(v_sel) k WHERE k <> 'kind';
    IF v_where IS NULL THEN
        RAISE EXCEPTION 'say which cards: --batch, --serials, --numbers, --number-range, '
                        '--category or --status' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY EXECUTE format('SELECT x.id FROM %s x WHERE %s ORDER BY x.id', v_table, v_where)
        USING v_sel;
END;
$$;

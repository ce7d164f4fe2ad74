-- An operator adds a category (kondge_billing/store/categories.py: add, which
-- reports every problem of it at once first). p_values holds the fields
-- given (the rest take the table's defaults) and "tariff", the name of the
-- tariff of its cards that have none of their own: not for vouchers, and
-- pricing in its currency. One audit record with every field.
CREATE OR REPLACE FUNCTION kondge.op_category_add(p_operator text, p_name text,
                                                  p_values jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_fields  CONSTANT text[] := ARRAY['description', 'face_value', 'currency', 'validity',
        'valid_until', 'valid_days', 'language', 'max_calls', 'billing', 'credit_limit',
        'pin_length', 'kind', 'max_call_seconds', 'auto_bind', 'max_callers'];
    v_given   text[];
    v_unknown text;
    v_row     kondge.category%ROWTYPE;
BEGIN
    SELECT string_agg(k, ', ') INTO v_unknown FROM jsonb_object_keys(p_values) k
     WHERE k <> ALL (v_fields) AND k <> 'tariff';
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'a category has no field %', v_unknown
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM kondge.category WHERE name = p_name) THEN
        RAISE EXCEPTION 'category % exists already', p_name USING ERRCODE = 'unique_violation';
    END IF;
    v_given := ARRAY(SELECT k FROM jsonb_object_keys(p_values) k WHERE k = ANY (v_fields));
    EXECUTE format('INSERT INTO kondge.category (%s) SELECT %s '
                   'FROM jsonb_populate_record(NULL::kondge.category, $2) r RETURNING *',
                   array_to_string('{name}' || ARRAY(SELECT quote_ident(k)
                                                       FROM unnest(v_given) k), ', '),
                   array_to_string('{$1}' || ARRAY(SELECT 'r.' || quote_ident(k)
                                                     FROM unnest(v_given) k), ', '))
       USING p_name, p_values INTO v_row;
    UPDATE kondge.category SET tariff_id = kondge.category_checked(v_row, p_values->>'tariff')
     WHERE name = p_name;
    PERFORM kondge.audit_record(p_operator, 'add category', 1,
                                jsonb_build_object('category', p_name),
                                kondge.category_json(p_name));
END;
$$;

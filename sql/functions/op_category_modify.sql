-- An operator changes a category (kondge_billing/store/categories.py: modify,
-- which reports every problem at once first): p_changes holds only the
-- fields to change, and "tariff" (a name, or null: none) if that changes.
-- A category's cards and vouchers were sold as they are: with any, its
-- kind and currency stay; with cards, its billing model too. Its tariff
-- prices in its currency, whichever of the two changes. One audit record
-- with each field's old and new value.
CREATE OR REPLACE FUNCTION kondge.op_category_modify(p_operator text, p_name text,
                                                     p_changes jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
DECLARE
    v_old     kondge.category%ROWTYPE;
    v_new     kondge.category%ROWTYPE;
    v_before  jsonb;
    v_cards   bigint;
    v_held    bigint;
    v_unknown text;
BEGIN
    SELECT string_agg(k, ', ') INTO v_unknown FROM jsonb_object_keys(p_changes) k
     WHERE k NOT IN ('description', 'face_value', 'currency', 'validity', 'valid_until',
                     'valid_days', 'language', 'max_calls', 'billing', 'credit_limit',
                     'pin_length', 'kind', 'max_call_seconds', 'auto_bind', 'max_callers',
                     'tariff');
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'a category has no field %', v_unknown
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_old FROM kondge.category WHERE name = p_name FOR UPDATE;
    IF v_old.name IS NULL THEN
        RAISE EXCEPTION 'no category %', p_name USING ERRCODE = 'no_data_found';
    END IF;
    v_before := kondge.category_json(p_name);
    v_new := jsonb_populate_record(v_old, p_changes - 'tariff');
    SELECT count(*) INTO v_cards FROM kondge.card WHERE category = p_name;
    SELECT v_cards + count(*) INTO v_held FROM kondge.voucher WHERE category = p_name;
    IF v_held > 0 AND (v_new.kind <> v_old.kind OR v_new.currency <> v_old.currency)
       OR v_cards > 0 AND v_new.billing <> v_old.billing THEN
        RAISE EXCEPTION 'category % has % cards or vouchers: its kind, currency and (with cards) '
                        'billing stay as they were sold', p_name, v_held
              USING ERRCODE = 'check_violation';
    END IF;
    UPDATE kondge.category
       SET description = v_new.description, face_value = v_new.face_value,
           currency = v_new.currency, validity = v_new.validity,
           valid_until = v_new.valid_until, valid_days = v_new.valid_days,
           language = v_new.language, max_calls = v_new.max_calls, billing = v_new.billing,
           credit_limit = v_new.credit_limit, pin_length = v_new.pin_length,
           kind = v_new.kind, max_call_seconds = v_new.max_call_seconds,
           auto_bind = v_new.auto_bind, max_callers = v_new.max_callers,
           tariff_id = kondge.category_checked(v_new,
                           CASE WHEN p_changes ? 'tariff' THEN p_changes->>'tariff'
                                ELSE v_before->>'tariff' END)
     WHERE name = p_name;
    PERFORM kondge.audit_record(p_operator, 'modify category', 1,
        jsonb_build_object('category', p_name),
        jsonb_build_object('changes', kondge.changes(v_before, kondge.category_json(p_name))));
END;
$$;

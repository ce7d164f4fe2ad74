-- An operator issues a batch of one category (kondge_billing/store/issuance.py:
-- issue): calling cards, each with the category's face value as its first
-- ledger entry, or recharge vouchers. The tool draws the numbers and PINs
-- and passes the numbers with the PINs' keyed hashes (p_numbers and
-- p_pin_hashes, pairwise); the value, currency, language and expiry come
-- from the category, never from the caller. One audit record for the batch,
-- with its count. Returns the batch.
CREATE OR REPLACE FUNCTION kondge.op_issue(
    p_operator text, p_category text, p_batch text, p_active boolean, p_tariff text,
    p_numbers text[], p_pin_hashes text[]
) RETURNS TABLE (batch_id integer, kind text, face_value numeric, currency text,
                 expires_at timestamptz, status text, issued integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_cat     kondge.category%ROWTYPE;
    v_count   integer := coalesce(cardinality(p_numbers), 0);
    v_expires timestamptz;
    v_status  text := CASE WHEN p_active THEN 'active' ELSE 'inactive' END;
    v_tariff  integer;
    v_batch   integer;
BEGIN
    SELECT * INTO v_cat FROM kondge.category c WHERE c.name = p_category FOR SHARE;
    IF v_cat.name IS NULL THEN
        RAISE EXCEPTION 'no category %', p_category USING ERRCODE = 'foreign_key_violation';
    END IF;
    PERFORM kondge.checked_amount('category ' || p_category || ': face value', v_cat.face_value,
                                  v_cat.kind = 'voucher');
    IF p_tariff IS NOT NULL AND v_cat.kind <> 'card' THEN
        RAISE EXCEPTION 'tariff: vouchers rate no calls; they have no tariff'
              USING ERRCODE = 'check_violation';
    END IF;
    v_tariff := kondge.tariff_in(p_tariff, v_cat.currency, 'category ' || p_category);
    IF v_count NOT BETWEEN 1 AND 1000000 OR cardinality(p_pin_hashes) IS DISTINCT FROM v_count
       OR array_position(p_numbers, NULL) IS NOT NULL
       OR EXISTS (SELECT 1 FROM unnest(p_numbers) n WHERE n !~ '^[1-9][0-9]{7,19}$')
       OR (SELECT count(DISTINCT n) FROM unnest(p_numbers) n) <> v_count THEN
        RAISE EXCEPTION 'a batch is 1 to 1,000,000 distinct numbers of 8 to 20 digits, '
                        'each with its PIN''s hash' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM kondge.checked_pin_hash(h) FROM unnest(p_pin_hashes) h
     WHERE h IS NULL OR length(h) <> 76 OR h !~ '^hmac-sha256\$[0-9a-f]+$' LIMIT 1;
    -- a number is a card's or a voucher's, never both (within a table, its
    -- unique index refuses it)
    IF v_cat.kind = 'card' AND EXISTS (SELECT 1 FROM unnest(p_numbers) n
                                        JOIN kondge.voucher v ON v.number = n)
       OR v_cat.kind = 'voucher' AND EXISTS (SELECT 1 FROM unnest(p_numbers) n
                                              JOIN kondge.card c ON c.number = n) THEN
        RAISE EXCEPTION 'a number of the batch belongs to a % already',
                        CASE v_cat.kind WHEN 'card' THEN 'voucher' ELSE 'card' END
              USING ERRCODE = 'unique_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM kondge.batch b WHERE b.name = p_batch) THEN
        RAISE EXCEPTION 'batch % exists already; choose another --batch', p_batch
              USING ERRCODE = 'unique_violation';
    END IF;
    v_expires := CASE v_cat.validity WHEN 'fixed' THEN v_cat.valid_until
                 WHEN 'after-issue' THEN now() + make_interval(days => v_cat.valid_days) END;
    IF v_expires <= now() THEN
        RAISE EXCEPTION 'category % is valid until %, which has passed', p_category, v_expires
              USING ERRCODE = 'check_violation';
    END IF;

    INSERT INTO kondge.batch (name, category, kind, count, operator)
    VALUES (p_batch, p_category, v_cat.kind, v_count, p_operator) RETURNING id INTO v_batch;
    IF v_cat.kind = 'card' THEN
        INSERT INTO kondge.card (number, pin_hash, currency, category, language, expires_at,
                                 status, activated_at, batch_id, tariff_id)
        SELECT n.number, n.pin_hash, v_cat.currency, p_category, v_cat.language, v_expires,
               v_status, CASE WHEN p_active THEN now() END, v_batch, v_tariff
          FROM unnest(p_numbers, p_pin_hashes) AS n(number, pin_hash);
        PERFORM kondge.post_ledger(
            ARRAY(SELECT c.id FROM kondge.card c WHERE c.batch_id = v_batch ORDER BY c.id),
            array_fill(v_cat.face_value, ARRAY[v_count]), 'issue',
            ARRAY(SELECT 'issue:' || c.number FROM kondge.card c WHERE c.batch_id = v_batch
                   ORDER BY c.id),
            'batch ' || p_batch);
    ELSE
        INSERT INTO kondge.voucher (number, pin_hash, value, currency, category, expires_at,
                                    status, activated_at, batch_id)
        SELECT n.number, n.pin_hash, v_cat.face_value, v_cat.currency, p_category, v_expires,
               v_status, CASE WHEN p_active THEN now() END, v_batch
          FROM unnest(p_numbers, p_pin_hashes) AS n(number, pin_hash);
    END IF;
    PERFORM kondge.audit_record(p_operator, 'issue ' || v_cat.kind || 's', v_count,
        jsonb_build_object('batch', p_batch),
        jsonb_build_object('category', p_category, 'face_value', v_cat.face_value::text,
                           'currency', v_cat.currency, 'tariff', p_tariff,
                           'status', v_status, 'expires_at', v_expires));
    RETURN QUERY SELECT v_batch, v_cat.kind, v_cat.face_value, v_cat.currency::text, v_expires,
                        v_status, v_count;
END;
$$;

-- What the operators' category functions check of a category as it will
-- be stored, beyond the table's constraints: amounts as an operator may
-- give them (a voucher's face value above zero), and its tariff (by name;
-- NULL: none): not for vouchers, pricing in its currency. Returns the
-- tariff's id; raises otherwise.
CREATE OR REPLACE FUNCTION kondge.category_checked(p_category kondge.category, p_tariff text)
RETURNS integer LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM kondge.checked_amount('face value', p_category.face_value,
                                  p_category.kind = 'voucher');
    PERFORM kondge.checked_amount('credit limit', p_category.credit_limit, false);
    IF p_tariff IS NOT NULL AND p_category.kind = 'voucher' THEN
        RAISE EXCEPTION 'tariff: a voucher category rates no calls; it has no tariff'
              USING ERRCODE = 'check_violation';
    END IF;
    RETURN kondge.tariff_in(p_tariff, p_category.currency, 'category ' || p_category.name);
END;
$$;

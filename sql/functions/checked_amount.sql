-- An amount an operator's function was given, as kondge_billing/rating/money.py
-- (operator_amount) reads one: a finite number of at most 12 digits before
-- the point and 8 after it; p_positive: above zero, else not negative
-- (p_positive NULL: any sign, but not zero). Raises naming p_label.
-- The currency's minor unit is checked by the tool, which knows it.
CREATE OR REPLACE FUNCTION kondge.checked_amount(p_label text, p_amount numeric,
                                                 p_positive boolean)
RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_amount IS NULL OR p_amount IN ('NaN', 'Infinity', '-Infinity')
       OR abs(p_amount) >= 1e12 OR scale(p_amount) > 8 THEN
        RAISE EXCEPTION '%: % is no amount (at most 12 digits before the point and 8 after it)',
                        p_label, coalesce(p_amount::text, 'none')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (p_positive AND p_amount <= 0) OR (NOT p_positive AND p_amount < 0)
       OR (p_positive IS NULL AND p_amount = 0) THEN
        RAISE EXCEPTION '%: % must be %', p_label, p_amount,
                        CASE WHEN p_positive THEN 'above zero'
                             WHEN NOT p_positive THEN 'zero or more' ELSE 'other than zero' END
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_amount;
END;
$$;

-- The id of the tariff called p_name, if it may rate p_whose calls in
-- p_currency: every version loaded so far prices in that currency (see
-- kondge_billing/store/card_tariffs.py, which says the same to the operator
-- first). NULL for no name; raises otherwise.
CREATE OR REPLACE FUNCTION kondge.tariff_in(p_name text, p_currency text, p_whose text)
RETURNS integer LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id         integer;
    v_currencies text[];
BEGIN
    IF p_name IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT t.id, array_agg(DISTINCT v.currency::text) FILTER (WHERE v.currency IS NOT NULL)
      INTO v_id, v_currencies
      FROM kondge.tariff t LEFT JOIN kondge.tariff_version v ON v.tariff_id = t.id
     WHERE t.name = p_name GROUP BY t.id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'tariff: no tariff named %', quote_literal(p_name)
              USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF v_currencies IS DISTINCT FROM ARRAY[p_currency] THEN
        RAISE EXCEPTION 'tariff: % prices in %, % is in %', p_name,
                        coalesce(array_to_string(v_currencies, ', '), 'nothing (no version)'),
                        p_whose, p_currency
              USING ERRCODE = 'check_violation';
    END IF;
    RETURN v_id;
END;
$$;

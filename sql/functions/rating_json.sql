-- The rating context of one call, as the pure engine reads it
-- (kondge_billing/rating/codec.py: context_from_json): the tariff
-- version's rounding and rules, the plan's rates for the destination in
-- every band, and the facts about the call that surcharges select on.
-- Built from ids: rating_context() after choosing them for a new call, and
-- the call path again for a call already authorised (its hold, or its CDR,
-- keeps the ids), so that a call is priced as it was authorised.
-- NULL when the version, plan or destination has no rate (any more).
CREATE OR REPLACE FUNCTION kondge.rating_json(
    p_version_id integer, p_plan_id integer, p_destination_id integer, p_prefix text,
    p_category text, p_access_number text, p_caller text, p_gateway_id integer
) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET enable_seqscan = on  -- the tariff tables: the planner's own choice (docs/performance.md)
AS $$
DECLARE
    v_version kondge.tariff_version%ROWTYPE;
    v_rates   jsonb;
BEGIN
    SELECT * INTO v_version FROM kondge.tariff_version WHERE id = p_version_id;
    IF v_version.id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT jsonb_object_agg(band, rate) INTO v_rates FROM kondge.tariff_rate
     WHERE plan_id = p_plan_id AND destination_id = p_destination_id;
    IF v_rates IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_build_object(
        'tariff', (SELECT name FROM kondge.tariff WHERE id = v_version.tariff_id),
        'tariff_id', v_version.tariff_id,
        'version_id', v_version.id, 'version', v_version.version,
        'valid_from', v_version.valid_from,
        'currency', v_version.currency, 'decimals', v_version.decimals,
        'rounding', v_version.rounding, 'rules', v_version.rules,
        'plan', (SELECT name FROM kondge.tariff_plan WHERE id = p_plan_id),
        'plan_id', p_plan_id,
        'category', p_category,
        'destination', (SELECT name FROM kondge.tariff_destination WHERE id = p_destination_id),
        'destination_id', p_destination_id,
        'prefix', p_prefix, 'rates', v_rates,
        'access_number', p_access_number, 'caller', p_caller,
        'gateway', (SELECT name FROM kondge.gateway WHERE id = p_gateway_id));
END;
$$;

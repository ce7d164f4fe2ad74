-- The rating of a tariff version's plan and destination, by their ids, for
-- the call path's processes to keep (kondge_billing/store/prices.py): a
-- loaded version never changes (tariff_unchanged.sql), so what one call
-- read serves every later call of the same ids. Without the call's facts
-- (category, access number, caller, gateway): each call adds its own. NULL
-- when the plan has no rate for the destination, or the ids are no
-- version's.
CREATE OR REPLACE FUNCTION kondge.radius_price(
    p_version_id integer, p_plan_id integer, p_destination_id integer, p_prefix text
) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = kondge, public
AS $$
    SELECT kondge.rating_json(p_version_id, p_plan_id, p_destination_id, p_prefix,
                              NULL, NULL, NULL, NULL)::text;
$$;

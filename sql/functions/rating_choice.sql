-- Which price a new call gets: the ids of the tariff version, plan and
-- destination, and the prefix that matched; all NULL when nothing applies
-- (no version in force, no plan matches, no destination). The same choice
-- as kondge_billing/rating/resolve.py makes from a file (tests/db/
-- test_tariffs.py checks that both agree):
--   tariff: p_tariff_id (the card's own, else its category's) or else the
--           default one;
--   version: the one in force at p_at (the latest valid_from <= p_at), or
--            exactly p_version_id when given (re-rating, diff);
--   plan: the highest priority among those whose selectors all match;
--   destination: the longest prefix of p_destination in that version.
-- The call path asks for the ids only: a loaded tariff version never
-- changes (tariff_unchanged.sql), so each process keeps the rating of ids
-- it has seen (kondge_billing/store/prices.py) and the database does not
-- build it again for every call. rating_context() gives the whole rating.
CREATE OR REPLACE FUNCTION kondge.rating_choice(
    p_category text, p_destination text, p_caller text, p_access_number text,
    p_gateway_id integer, p_at timestamptz,
    p_tariff_id integer DEFAULT NULL, p_version_id integer DEFAULT NULL,
    OUT version_id integer, OUT plan_id integer, OUT destination_id integer, OUT prefix text)
LANGUAGE plpgsql STABLE
SET enable_seqscan = on  -- the tariff tables: the planner's own choice (docs/performance.md)
AS $$
#variable_conflict use_variable
DECLARE
    v_version_id integer;
    v_gateway    text;
    v_plan_id    integer;
BEGIN
    IF p_destination IS NULL OR p_destination !~ '^[0-9]{1,32}$' THEN
        RETURN;
    END IF;
    IF p_version_id IS NOT NULL THEN
        v_version_id := p_version_id;
    ELSE
        SELECT v.id INTO v_version_id FROM kondge.tariff_version v
         WHERE v.tariff_id = coalesce(p_tariff_id,
                                      (SELECT t.id FROM kondge.tariff t WHERE t.is_default))
           AND v.valid_from <= p_at
         ORDER BY v.valid_from DESC, v.id DESC LIMIT 1;
    END IF;
    IF v_version_id IS NULL THEN
        RETURN;
    END IF;
    SELECT g.name INTO v_gateway FROM kondge.gateway g WHERE g.id = p_gateway_id;

    SELECT p.id INTO v_plan_id FROM kondge.tariff_plan p
     WHERE p.version_id = v_version_id
       AND (p.categories IS NULL OR p_category = ANY (p.categories))
       AND (p.gateways IS NULL OR v_gateway = ANY (p.gateways))
       AND (p.access_prefixes IS NULL OR EXISTS (
                SELECT 1 FROM unnest(p.access_prefixes) a
                 WHERE starts_with(coalesce(p_access_number, ''), a)))
       AND (p.caller_prefixes IS NULL OR EXISTS (
                SELECT 1 FROM unnest(p.caller_prefixes) c
                 WHERE starts_with(coalesce(p_caller, ''), c)))
     ORDER BY p.priority DESC, p.id LIMIT 1;
    IF v_plan_id IS NULL THEN
        RETURN;
    END IF;

    SELECT tp.prefix, tp.destination_id INTO prefix, destination_id
      FROM kondge.tariff_prefix tp
     WHERE tp.version_id = v_version_id
       AND tp.prefix = ANY (kondge.prefixes_of(p_destination))
     ORDER BY length(tp.prefix) DESC LIMIT 1;
    IF destination_id IS NOT NULL THEN
        version_id := v_version_id;
        plan_id := v_plan_id;
    ELSE
        prefix := NULL;
    END IF;
END;
$$;

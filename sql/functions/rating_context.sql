-- Which price a new call gets, as the rating the engine reads, or NULL when
-- nothing applies (no version in force, no plan matches, no destination, no
-- rate: the call is refused as DestinationBlocked): rating_json() of the
-- ids rating_choice() chooses (see there for the rules).
CREATE OR REPLACE FUNCTION kondge.rating_context(
    p_category text, p_destination text, p_caller text, p_access_number text,
    p_gateway_id integer, p_at timestamptz,
    p_tariff_id integer DEFAULT NULL, p_version_id integer DEFAULT NULL
) RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    v_choice record;
BEGIN
    SELECT * INTO v_choice
      FROM kondge.rating_choice(p_category, p_destination, p_caller, p_access_number,
                                p_gateway_id, p_at, p_tariff_id, p_version_id);
    IF v_choice.version_id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN kondge.rating_json(v_choice.version_id, v_choice.plan_id, v_choice.destination_id,
                              v_choice.prefix, p_category, p_access_number, p_caller,
                              p_gateway_id);
END;
$$;

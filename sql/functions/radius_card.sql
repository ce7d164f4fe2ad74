-- Stage 1 and stage 2 (kondge_billing/cards.py: for_call): the card for a
-- call, by its number (with its PIN checked here: the caller passes the
-- keyed hash of the PIN it was given, and gets back only whether it
-- matches) or by the caller number bound to it; its category; what its
-- other calls hold; which stage the request is; the number the caller came
-- in on and its policy; and, at stage 2, the rating of the destination
-- under the card's tariff.
--
-- The stage: p_stage when the gateway named it (Service-Type), else a
-- request with no Called-Station-Id or with one of our access numbers in it
-- is a login (stage 1), any other number a destination (stage 2).
-- The access number: at stage 1 the number called; it is kept for the call
-- (call_login) so that stage 2 and the CDR price by it whatever the order
-- of the packets; at stage 2 the one stage 1 kept, else the incoming leg's.
CREATE OR REPLACE FUNCTION kondge.radius_card(
    p_number text, p_pin_hash text, p_caller_number text, p_called text, p_caller text,
    p_gateway_id integer, p_call_id text, p_conf_id text, p_stage text, p_at timestamptz
) RETURNS TABLE (
    id bigint, number text, pin_ok boolean, balance numeric, currency char(3), status text,
    expires_at timestamptz, language text, category text, billing text, credit_limit numeric,
    max_calls integer, max_call_seconds integer, auto_bind boolean, max_callers integer,
    held numeric, active_calls integer, stage text, access_number text, access_login text,
    access_language text, access_prompt_id integer, callers_bound bigint,
    caller_card_id bigint, rating text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = kondge, public AS $$
#variable_conflict use_column
DECLARE
    v_card   record;
    v_pin_ok boolean;
    v_stage  text;
    v_access text;
    v_policy record;
    v_holds  record;
    v_bound_card bigint;
BEGIN
    SELECT c.id, c.number, c.pin_hash, c.balance, c.currency, c.status, c.expires_at,
           c.language, c.category, c.tariff_id, cat.tariff_id AS category_tariff_id,
           cat.billing, cat.credit_limit, cat.max_calls, cat.max_call_seconds, cat.auto_bind,
           cat.max_callers
      INTO v_card
      FROM kondge.card c JOIN kondge.category cat ON cat.name = c.category
     WHERE (p_number IS NOT NULL AND c.number = p_number)
        OR (p_number IS NULL
            AND c.id = (SELECT b.card_id FROM kondge.caller b WHERE b.number = p_caller_number));
    IF v_card.id IS NULL THEN
        RETURN;
    END IF;
    v_pin_ok := CASE WHEN p_number IS NULL THEN NULL ELSE v_card.pin_hash = p_pin_hash END;

    v_stage := coalesce(p_stage, CASE
        WHEN coalesce(p_called, '') = '' THEN 'login'
        WHEN EXISTS (SELECT 1 FROM kondge.access_number a WHERE a.number = p_called) THEN 'login'
        ELSE 'destination' END);
    IF v_stage = 'login' THEN
        v_access := nullif(p_called, '');
        IF p_conf_id IS NOT NULL AND v_access IS NOT NULL AND v_pin_ok IS NOT FALSE THEN
            INSERT INTO kondge.call_login (gateway_id, call_id, access_number)
            VALUES (p_gateway_id, p_conf_id, v_access)
            ON CONFLICT DO NOTHING;
        END IF;
    ELSIF p_conf_id IS NOT NULL THEN
        SELECT l.access_number INTO v_access FROM kondge.call_login l
         WHERE l.gateway_id = p_gateway_id AND l.call_id = p_conf_id;
        IF v_access IS NULL THEN
            SELECT l.called INTO v_access FROM kondge.call_leg l
             WHERE l.gateway_id = p_gateway_id AND l.call_id = p_conf_id AND l.leg = 'answer'
             LIMIT 1;
        END IF;
    END IF;
    SELECT a.login, a.language, a.prompt_id INTO v_policy
      FROM kondge.access_number a WHERE a.number = v_access;
    v_holds := kondge.card_holds(v_card.id, p_gateway_id, p_call_id);
    SELECT b.card_id INTO v_bound_card FROM kondge.caller b WHERE b.number = p_caller_number;

    RETURN QUERY SELECT
        v_card.id, v_card.number, v_pin_ok, v_card.balance, v_card.currency, v_card.status,
        v_card.expires_at, v_card.language, v_card.category, v_card.billing,
        v_card.credit_limit, v_card.max_calls, v_card.max_call_seconds, v_card.auto_bind,
        v_card.max_callers, v_holds.held, v_holds.calls, v_stage, v_access,
        coalesce(v_policy.login, 'both'), v_policy.language, v_policy.prompt_id,
        (SELECT count(*) FROM kondge.caller b WHERE b.card_id = v_card.id),
        v_bound_card,
        CASE WHEN v_stage = 'destination' AND v_pin_ok IS NOT FALSE THEN
            kondge.rating_context(v_card.category, p_called, p_caller, v_access, p_gateway_id,
                                  p_at, coalesce(v_card.tariff_id, v_card.category_tariff_id))::text
        END;
END;
$$;

-- Until when the lock that refused a card-number login lasts (radius_card:
-- refused_until), or NULL for a refusal that is no lock.
CREATE OR REPLACE FUNCTION kondge.pin_lock_end(
    p_refusal text, p_number text, p_caller text, p_gateway_id integer)
RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = kondge, public AS $$
    SELECT CASE p_refusal
        WHEN 'card-locked' THEN coalesce(
            (SELECT c.pin_locked_until FROM kondge.card c WHERE c.number = p_number),
            (SELECT g.locked_until FROM kondge.pin_guard g
              WHERE g.scope = 'card' AND g.key = p_number))
        WHEN 'caller-locked' THEN (SELECT g.locked_until FROM kondge.pin_guard g
                                    WHERE g.scope = 'caller' AND g.key = p_caller)
        WHEN 'gateway-locked' THEN (SELECT g.locked_until FROM kondge.pin_guard g
                                     WHERE g.scope = 'gateway' AND g.key = p_gateway_id::text)
    END;
$$;

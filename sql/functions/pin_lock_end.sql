-- Until when the lock that refused a card-number login lasts (radius_card:
-- refused_until), or NULL for a refusal that is no lock.
--
-- PL/pgSQL, one query a kind of lock: a SQL function's body is planned at
-- every call, and one CASE over the three queries would be planned for each
-- call's refusal too (the planner folds the CASE, so that plan always looks
-- cheaper than the one kept); each query alone is planned once a connection.
CREATE OR REPLACE FUNCTION kondge.pin_lock_end(
    p_refusal text, p_number text, p_caller text, p_gateway_id integer)
RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = kondge, public AS $$
BEGIN
    IF p_refusal = 'card-locked' THEN
        RETURN coalesce(
            (SELECT c.pin_locked_until FROM kondge.card c WHERE c.number = p_number),
            (SELECT g.locked_until FROM kondge.pin_guard g
              WHERE g.scope = 'card' AND g.key = p_number));
    ELSIF p_refusal = 'caller-locked' THEN
        RETURN (SELECT g.locked_until FROM kondge.pin_guard g
                 WHERE g.scope = 'caller' AND g.key = p_caller);
    ELSIF p_refusal = 'gateway-locked' THEN
        RETURN (SELECT g.locked_until FROM kondge.pin_guard g
                 WHERE g.scope = 'gateway' AND g.key = p_gateway_id::text);
    END IF;
    RETURN NULL;
END;
$$;
